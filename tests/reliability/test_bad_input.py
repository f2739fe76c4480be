"""Bad input: malformed events never crash the worker, and the CLI's file readers never trace.

Three layers, cheapest first:

* a hypothesis property on the processor alone (shrinks to the smallest failing event);
* the same generated events, ~1,000 of them mixed with ~1,000 valid ones, through a real
  worker process on the real broker (``reliability.bad_input.run_bad_input``; 10,000 in
  ``fraudstream chaos``);
* broken CSV/Parquet files given to ``fraudstream replay`` and ``fraudstream evaluate``.

Sizes: the broker's default ``message.max.bytes`` is ~1 MB and the worker's producer refuses
records over 1,000,000 bytes, so a dead letter (base64 of the original, 4/3 of its size) can
carry an original of at most ~748 KB (``MAX_DEAD_LETTERABLE``). Oversized cases go up to that;
what happens above it is recorded in ``test_known_gaps.py``.
"""

from __future__ import annotations

import base64
import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from infra.settings import Settings
from models.registry import Registry
from reliability.bad_input import run_bad_input
from reliability.bad_input_corpus import MAX_DEAD_LETTERABLE, Case, malformed_strategy, valid_cases
from streams.model_runtime import ModelRuntime
from streams.processor import Processor, Record
from streams.telemetry import Telemetry
from streams.terminal_replica import TerminalReplica


@pytest.fixture(scope="module")
def processor(tmp_path_factory: pytest.TempPathFactory) -> Processor:
    runtime = ModelRuntime("logreg", Registry(tmp_path_factory.mktemp("reg"), "k"), "snap")
    runtime.start()
    return Processor({}, TerminalReplica(7.0), runtime, Telemetry("w"))


OFFSETS = itertools.count()


def _run(processor: Processor, case: Case, offset: int = 0):
    record = Record(case.key, case.value, case.topic, 3, offset)
    return (processor.score if case.topic == "transactions" else processor.learn)([record])


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.data_too_large])
@given(case=malformed_strategy())
def test_every_malformed_event_is_dead_lettered_with_reason_and_bytes(
    processor: Processor, case: Case
) -> None:
    # examples repeat transaction ids (tx 0 of card 0 in two envelopes failed once, make
    # test 2026-12-02): each reads as a new assignment, as the valid-events property does
    processor.invalidate()
    out = _run(processor, case, offset=next(OFFSETS))  # a fresh offset: a first read
    scored = {json.loads(v)["tx_id"] for _, v in out.scores}
    assert scored == set(case.tx_ids), f"{case.category}: scored {scored}"
    assert len(out.dead) == len(case.letters) == 1
    _, value = out.dead[0]
    body = json.loads(value)
    assert body["reason"].strip() and "\n" not in body["reason"]
    assert base64.b64decode(body["value_b64"]) == case.letters[0]
    assert body["source_topic"] == case.topic and body["partition"] == 3
    assert ("envelope_index" in body) is bool(case.dead)
    if case.key is not None:
        assert base64.b64decode(body["key_b64"]) == case.key


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_valid_events_are_scored_not_dead_lettered(processor: Processor, seed: int) -> None:
    # seeds repeat transaction ids: each example reads as a new assignment, whose re-read
    # transactions are answered (within one, a transaction is answered once)
    processor.invalidate()
    for case in valid_cases(20, seed):
        out = _run(processor, case)
        assert not out.dead
        assert sorted(json.loads(v)["tx_id"] for _, v in out.scores) == sorted(case.tx_ids)


@pytest.mark.integration
def test_worker_dead_letters_generated_malformed_events_and_scores_the_rest(
    kafka_settings: Settings, tmp_path: Path
) -> None:
    report = run_bad_input(kafka_settings, tmp_path, n_malformed=1_000, n_valid=1_000, seed=7)
    print("\n".join(report.lines()))
    assert report.figures["largest message (bytes)"] > 500_000
    assert report.figures["largest message (bytes)"] <= MAX_DEAD_LETTERABLE
    assert not report.problems, report.problems


# --- the CLI's file readers ----------------------------------------------------------------

HEADER = ["tx_id", "ts", "customer_id", "terminal_id", "amount", "fraud"]
GOOD_ROW = ["1", "1530000000", "2", "3", "12.5", "0"]


@st.composite
def broken_csv(draw: st.DrawFn) -> bytes:
    """A CSV of transactions with exactly one kind of damage the reader must name."""
    rows = [list(GOOD_ROW) for _ in range(draw(st.integers(1, 6)))]
    for i, row in enumerate(rows):
        row[0] = str(i + 1)
    header = list(HEADER)
    damage = draw(st.sampled_from(["cell", "missing_column", "short_row", "garbage", "empty"]))
    if damage == "cell":
        r = draw(st.integers(0, len(rows) - 1))
        c = draw(st.sampled_from([1, 2, 3, 4]))  # ts, customer_id, terminal_id, amount
        rows[r][c] = draw(st.sampled_from(["", "abc", "nan", "inf", "-5", "1e400", "--", "None",
                                           "1.5.5", "0x10", "\u00e9t\u00e9"]))
        if c in (2, 3) and rows[r][c] == "0x10":
            rows[r][c] = "1.5"  # a fractional id
    elif damage == "missing_column":
        drop = draw(st.sampled_from([1, 2, 3, 4]))
        header.pop(drop)
        rows = [row[:drop] + row[drop + 1:] for row in rows]
    elif damage == "short_row":
        rows[draw(st.integers(0, len(rows) - 1))] = rows[0][:3]
    elif damage == "garbage":
        return draw(st.binary(min_size=1, max_size=200)) + b"\xff\x00"
    else:
        return b""
    text = "\n".join(",".join(r) for r in [header, *rows]) + "\n"
    return text.encode()


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from fraudstream.cli import main

    old = sys.argv
    sys.argv = ["fraudstream", *argv]
    try:
        with pytest.raises(SystemExit) as exit_info:
            main()
    finally:
        sys.argv = old
    return int(exit_info.value.code or 0), capsys.readouterr().err


@pytest.mark.timeout(120)
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=broken_csv(), suffix=st.sampled_from([".csv", ".parquet"]),
       command=st.sampled_from(["replay", "evaluate"]))
def test_cli_readers_give_one_line_errors_on_broken_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, suffix: str, command: str
) -> None:
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(content)  # a CSV body under .parquet is a broken Parquet file
    argv = (["replay", str(path), "--bootstrap", "127.0.0.1:9", "--no-progress"]
            if command == "replay" else ["evaluate", "--data", str(path), "-m", "logreg"])
    code, err = _cli(argv, capsys)
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("fraudstream: error: "), err
    assert "Traceback" not in err
    assert path.name in lines[0]


@pytest.mark.parametrize("content", [b"", b"tx_id,ts\n1,", b"\x00\xff" * 50])
def test_cli_readers_as_a_user_runs_them(tmp_path: Path, content: bytes) -> None:
    """The real console script in a subprocess: exit 2, one line on stderr, no traceback."""
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    for argv in (["replay", str(path), "--bootstrap", "127.0.0.1:9", "--no-progress"],
                 ["evaluate", "--data", str(path), "-m", "logreg"]):
        done = subprocess.run([sys.executable, "-m", "fraudstream", *argv], capture_output=True,
                              text=True, timeout=120, check=False)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
