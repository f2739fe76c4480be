"""Writing simulated days to Parquet or CSV as they are generated (memory stays per day)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

from fraudstream.errors import FraudstreamError

FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv"}


def output_format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise FraudstreamError(f"{path}: unknown output format (use .parquet, .pq or .csv)")
    return fmt


def write_days(
    days: Iterable[pd.DataFrame],
    path: str | Path,
    on_day: Callable[[pd.DataFrame], None] | None = None,
) -> int:
    """Append each day's frame to ``path``; returns the number of rows written.

    Written to a temporary name and renamed at the end, so an interrupted run never leaves a
    truncated file that looks complete.
    """
    path = Path(path)
    fmt = output_format(path)
    if not path.parent.exists():
        raise FraudstreamError(f"{path.parent}: no such directory")
    tmp = path.with_name(path.name + ".partial")
    rows = 0
    try:
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            writer = None
            try:
                for day in days:
                    table = pa.Table.from_pandas(day, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table)
                    rows += len(day)
                    if on_day:
                        on_day(day)
            finally:
                if writer is not None:
                    writer.close()
            if writer is None:
                raise FraudstreamError("no transactions to write")
        else:
            with open(tmp, "w", newline="") as fh:
                header = True
                for day in days:
                    day.to_csv(fh, header=header, index=False)
                    header = False
                    rows += len(day)
                    if on_day:
                        on_day(day)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return rows
