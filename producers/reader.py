"""Bring your own data: CSV or Parquet transactions -> the canonical DataFrame.

``read_transactions(path, preset=None, mapping=None)`` is shared by ``fraudstream replay`` and
the offline evaluator, so both see the same validated data. The result has the columns of
``docs/contracts.md`` (``tx_id, ts, customer_id, terminal_id, amount`` and, when the file has
them, ``fraud, scenario, label_ts``), sorted by (``ts``, ``tx_id``).

A bad value stops the read with an error that names the file, the row (1-based data row; for
CSV also the line, counting the header) and the source column - a replay that silently dropped
rows would make every downstream number wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from fraudstream.errors import FraudstreamError

REQUIRED = ("ts", "customer_id", "terminal_id", "amount")
OPTIONAL = ("tx_id", "fraud", "scenario", "label_ts")
CANONICAL = ("tx_id", "ts", "customer_id", "terminal_id", "amount", "fraud", "scenario",
             "label_ts")

PRESETS: dict[str, dict[str, str]] = {
    # The handbook's published layout (its TX_TIME_SECONDS/TX_TIME_DAYS are derived: ignored).
    "handbook": {
        "tx_id": "TRANSACTION_ID",
        "ts": "TX_DATETIME",
        "customer_id": "CUSTOMER_ID",
        "terminal_id": "TERMINAL_ID",
        "amount": "TX_AMOUNT",
        "fraud": "TX_FRAUD",
        "scenario": "TX_FRAUD_SCENARIO",
    },
}
DEFAULT_LABEL_DELAY_DAYS = 7.0


class BadData(FraudstreamError):
    """The file cannot be read as transactions; the message names file, row and column."""


def parse_mapping(items: list[str] | None) -> dict[str, str]:
    """``["amount=AMT", "ts=WHEN"]`` -> ``{"amount": "AMT", "ts": "WHEN"}`` (canonical=source)."""
    mapping: dict[str, str] = {}
    for item in items or []:
        canon, eq, source = item.partition("=")
        canon, source = canon.strip(), source.strip()
        if not eq or not canon or not source:
            raise BadData(f"--map {item!r} must be COLUMN=SOURCE_COLUMN")
        if canon not in CANONICAL:
            raise BadData(f"--map {item!r}: {canon!r} is not one of {', '.join(CANONICAL)}")
        mapping[canon] = source
    return mapping


def _read_raw(path: Path) -> tuple[pd.DataFrame, bool]:
    name = path.name.lower()
    if not path.is_file():
        raise BadData(f"{path}: no such file")
    try:
        if name.endswith((".parquet", ".pq")):
            return pd.read_parquet(path), False
        if name.endswith((".csv", ".csv.gz")):
            return pd.read_csv(path, dtype=str, keep_default_na=False), True
    except (OSError, ValueError) as exc:
        raise BadData(f"{path}: cannot read: {exc}") from None
    raise BadData(f"{path}: unknown format (use .csv, .csv.gz, .parquet or .pq)")


class _Checker:
    """Converts columns and reports the first bad value with its position."""

    def __init__(self, path: Path, is_csv: bool) -> None:
        self.path, self.is_csv = path, is_csv

    def fail(self, row: int, column: str, reason: str) -> BadData:
        where = f"row {row + 1} (line {row + 2})" if self.is_csv else f"row {row + 1}"
        return BadData(f"{self.path}: {where}, column {column!r}: {reason}")

    def numbers(self, raw: pd.Series, column: str) -> np.ndarray:
        if raw.dtype == bool:
            raw = raw.astype(np.int64)
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.argmax(bad))
            raise self.fail(row, column, f"{raw.iloc[row]!r} is not a finite number")
        return values

    def non_negative(self, values: np.ndarray, raw: pd.Series, column: str) -> np.ndarray:
        bad = values < 0
        if bad.any():
            row = int(np.argmax(bad))
            raise self.fail(row, column, f"{raw.iloc[row]!r} is negative")
        return values

    def integers(self, raw: pd.Series, column: str) -> np.ndarray:
        values = self.non_negative(self.numbers(raw, column), raw, column)
        bad = values != np.floor(values)
        if bad.any():
            row = int(np.argmax(bad))
            raise self.fail(row, column, f"{raw.iloc[row]!r} is not an integer")
        return values.astype(np.int64)

    def times(self, raw: pd.Series, column: str) -> np.ndarray:
        """Epoch seconds from numbers, or from datetimes (naive ones are taken as UTC)."""
        if pd.api.types.is_datetime64_any_dtype(raw):
            parsed = pd.to_datetime(raw, utc=True)
        else:
            numeric = pd.to_numeric(raw, errors="coerce")
            if not numeric.isna().any() or pd.api.types.is_numeric_dtype(raw):
                return self.non_negative(self.numbers(raw, column), raw, column)
            parsed = pd.to_datetime(raw, utc=True, errors="coerce", format="ISO8601")
        bad = parsed.isna().to_numpy()
        if bad.any():
            row = int(np.argmax(bad))
            raise self.fail(row, column, f"{raw.iloc[row]!r} is not a date-time or a number")
        seconds = (parsed - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy()
        return self.non_negative(seconds, raw, column)


def read_transactions(
    path: str | Path,
    preset: str | None = None,
    mapping: Mapping[str, str] | None = None,
    label_delay_days: float = DEFAULT_LABEL_DELAY_DAYS,
) -> pd.DataFrame:
    """Read, validate and normalise a transaction file (see the module docstring).

    ``preset`` names a known layout (``"handbook"``); ``mapping`` maps canonical column names
    to the file's and overrides the preset. Columns not mentioned are looked up under their
    canonical name. ``label_ts`` defaults to ``ts + label_delay_days`` when the file has
    ``fraud`` but no ``label_ts``.
    """
    path = Path(path)
    if preset is not None and preset not in PRESETS:
        raise BadData(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    names = {c: c for c in CANONICAL}
    names.update(PRESETS.get(preset or "", {}))
    names.update(mapping or {})
    raw, is_csv = _read_raw(path)
    check = _Checker(path, is_csv)

    missing = [f"{c} (from {names[c]!r})" for c in REQUIRED if names[c] not in raw.columns]
    if missing:
        raise BadData(f"{path}: missing column {missing[0]}; columns are {list(raw.columns)}")

    def col(c: str) -> pd.Series:
        return raw[names[c]]

    out: dict[str, np.ndarray] = {}
    out["ts"] = check.times(col("ts"), names["ts"])
    out["customer_id"] = check.integers(col("customer_id"), names["customer_id"])
    out["terminal_id"] = check.integers(col("terminal_id"), names["terminal_id"])
    out["amount"] = check.non_negative(
        check.numbers(col("amount"), names["amount"]), col("amount"), names["amount"]
    )
    has = {c: names[c] in raw.columns for c in OPTIONAL}
    if has["tx_id"]:
        out["tx_id"] = check.integers(col("tx_id"), names["tx_id"])
        dup = pd.Series(out["tx_id"]).duplicated().to_numpy()
        if dup.any():
            row = int(np.argmax(dup))
            raise check.fail(row, names["tx_id"], f"duplicate tx_id {out['tx_id'][row]}")
    else:  # number them in event-time order, as the simulator does
        out["tx_id"] = np.empty(len(raw), dtype=np.int64)
        out["tx_id"][np.argsort(out["ts"], kind="stable")] = np.arange(len(raw))
    if has["fraud"]:
        fraud = check.integers(col("fraud"), names["fraud"])
        bad = fraud > 1
        if bad.any():
            row = int(np.argmax(bad))
            raise check.fail(row, names["fraud"], f"{col('fraud').iloc[row]!r} is not 0 or 1")
        out["fraud"] = fraud.astype(np.int8)
    if has["scenario"]:
        scenario = check.integers(col("scenario"), names["scenario"])
        bad = scenario > 127
        if bad.any():
            row = int(np.argmax(bad))
            raise check.fail(row, names["scenario"], "scenario must be 0..127")
        out["scenario"] = scenario.astype(np.int8)
    if has["label_ts"]:
        out["label_ts"] = check.times(col("label_ts"), names["label_ts"])
        early = out["label_ts"] < out["ts"]
        if early.any():
            row = int(np.argmax(early))
            raise check.fail(row, names["label_ts"], "label_ts is before the transaction's ts")
    elif has["fraud"]:
        out["label_ts"] = out["ts"] + label_delay_days * 86_400.0

    frame = pd.DataFrame({c: out[c] for c in CANONICAL if c in out})
    return frame.sort_values(["ts", "tx_id"], kind="stable", ignore_index=True)
