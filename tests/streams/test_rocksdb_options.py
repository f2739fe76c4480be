"""The card table's RocksDB databases are opened with bounded memtables and block cache.

Faust's defaults (three 64 MB memtables and a 2 GB block cache per partition database) let a
worker's RSS grow to 590 MB in a 200,000-transaction drain; with these bounds it peaked at
426 MB (``python -m benchmarks.drain_one --model sgd_logreg --envelope 500 --tx 200000``).
"""

from __future__ import annotations

from pathlib import Path

from infra.settings import Settings
from streams.app import FraudApp


def test_the_card_store_gets_the_memory_bounds_of_the_settings(tmp_path: Path) -> None:
    settings = Settings().model_copy(update={
        "state_dir": tmp_path, "rocksdb_write_buffer_mb": 8, "rocksdb_block_cache_mb": 32})
    options = FraudApp(settings).cards.data.rocksdb_options
    assert options.write_buffer_size == 8 << 20
    assert options.max_write_buffer_number == 2
    assert options.block_cache_size == 32 << 20
