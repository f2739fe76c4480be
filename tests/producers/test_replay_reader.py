"""read_transactions: round trips, the handbook preset, mappings, and precise errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pandas.testing as pdt
import pytest

from producers.reader import BadData, parse_mapping, read_transactions
from producers.simulator import Simulator
from producers.world import WorldConfig
from producers.writer import write_days


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_simulated_file_reads_back_identical(tmp_path: Path, suffix: str) -> None:
    sim = Simulator(WorldConfig(n_days=2, seed=4))
    path = tmp_path / f"sim{suffix}"
    rows = write_days(sim.days(), path)
    original = Simulator(WorldConfig(n_days=2, seed=4)).frame()
    assert rows == len(original)
    pdt.assert_frame_equal(read_transactions(path), original)


def _handbook_csv(path: Path, rows: list[str]) -> Path:
    header = ("TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_TIME_SECONDS,"
              "TX_TIME_DAYS,TX_FRAUD,TX_FRAUD_SCENARIO")
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_handbook_preset(tmp_path: Path) -> None:
    path = _handbook_csv(tmp_path / "hb.csv", [
        "1,2018-04-01 00:07:56,2,1365,146.00,476,0,0,0",
        "0,2018-04-01 00:07:56,596,3156,57.16,476,0,0,0",
        "2,2018-04-02 10:00:00,4961,3412,421.23,122400,1,1,1",
    ])
    frame = read_transactions(path, preset="handbook")
    assert frame["tx_id"].tolist() == [0, 1, 2]
    assert frame["ts"].iloc[0] == pd.Timestamp("2018-04-01 00:07:56", tz="UTC").timestamp()
    assert frame["fraud"].tolist() == [0, 0, 1] and frame["scenario"].tolist() == [0, 0, 1]
    assert np.allclose(frame["label_ts"] - frame["ts"], 7 * 86_400)
    assert str(frame["fraud"].dtype) == "int8"


def test_column_mapping_and_generated_ids(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("when,card,shop,eur\n200.5,7,8,10\n100,7,9,2.5\n")
    frame = read_transactions(
        path, mapping=parse_mapping(["ts=when", "customer_id=card", "terminal_id=shop",
                                     "amount=eur"])
    )
    assert frame["ts"].tolist() == [100.0, 200.5]
    assert frame["tx_id"].tolist() == [0, 1]
    assert list(frame.columns) == ["tx_id", "ts", "customer_id", "terminal_id", "amount"]


@pytest.mark.parametrize(("row", "column", "message"), [
    ("3,2018-04-01 00:09:00,5,6,abc,0,0,0,0", "TX_AMOUNT", "'abc' is not a finite number"),
    ("3,2018-04-01 00:09:00,5,6,-4,0,0,0,0", "TX_AMOUNT", "negative"),
    ("3,yesterday,5,6,4,0,0,0,0", "TX_DATETIME", "not a date-time"),
    ("3,2018-04-01 00:09:00,5.5,6,4,0,0,0,0", "CUSTOMER_ID", "not an integer"),
    ("3,2018-04-01 00:09:00,5,6,4,0,0,2,0", "TX_FRAUD", "not 0 or 1"),
    ("1,2018-04-01 00:09:00,5,6,4,0,0,0,0", "TRANSACTION_ID", "duplicate tx_id 1"),
])
def test_bad_row_names_file_row_and_column(
    tmp_path: Path, row: str, column: str, message: str
) -> None:
    path = _handbook_csv(tmp_path / "bad.csv", [
        "0,2018-04-01 00:07:56,596,3156,57.16,476,0,0,0",
        "1,2018-04-01 00:07:56,2,1365,146.00,476,0,0,0",
        row,
    ])
    with pytest.raises(BadData) as info:
        read_transactions(path, preset="handbook")
    text = str(info.value)
    assert str(path) in text and "row 3 (line 4)" in text and repr(column) in text, text
    assert message in text


def test_parquet_errors_and_missing_columns(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    pd.DataFrame({"ts": [1.0, float("inf")], "customer_id": [1, 2], "terminal_id": [1, 2],
                  "amount": [1.0, 2.0]}).to_parquet(path)
    with pytest.raises(BadData, match=r"t.parquet: row 2, column 'ts'"):
        read_transactions(path)
    with pytest.raises(BadData, match="missing column amount"):
        read_transactions(path, mapping={"amount": "AMT"})
    with pytest.raises(BadData, match="unknown preset"):
        read_transactions(path, preset="kaggle")
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(BadData, match="unknown format"):
        read_transactions(tmp_path / "x.json")
    with pytest.raises(BadData, match="must be COLUMN=SOURCE"):
        parse_mapping(["amount"])
