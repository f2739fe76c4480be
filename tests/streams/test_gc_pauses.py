"""Start-up objects are exempt from the collector's full passes in a running worker."""

from __future__ import annotations

import gc
import subprocess
import sys


def test_freezing_moves_start_up_objects_out_of_the_collectors_walks() -> None:
    # in a child process: freezing this test process would keep its objects for good
    code = (
        "import gc, json\n"
        "from streams.gc_pauses import freeze_startup_objects\n"
        "import streams.app  # the worker's modules: Faust, aiokafka, River, ...\n"
        "before = len(gc.get_objects())\n"
        "frozen = freeze_startup_objects()\n"
        "print(json.dumps([before, frozen, len(gc.get_objects()), gc.get_freeze_count()]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120)
    before, frozen, after, count = (int(x) for x in done.stdout.strip()[1:-1].split(","))
    assert frozen == count > 50_000  # the worker's modules alone hold this many containers
    assert after < before / 10  # what the collector still walks: objects made since
    assert gc.get_freeze_count() == 0  # this process untouched
