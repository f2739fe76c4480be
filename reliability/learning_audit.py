"""An audit of learning across worker incarnations, for the ``crash`` scenario.

A SIGKILLed worker takes its /metrics counters with it, so they cannot tell whether a label
was learned by two incarnations, or whether it ended up twice in the model that survives.
``AuditedWorker`` runs the real worker code with hooks that append every model update,
snapshot and snapshot load to a file, written before the update returns so that a kill cannot
lose it; ``read_audit`` replays that file into the lineage of the final model.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.settings import Settings, child_env
from streams.demo_processes import WorkerProcess


class AuditedWorker(WorkerProcess):
    """A worker whose every model update and snapshot is appended to an audit file.

    The counters in /metrics die with a SIGKILLed process, so they cannot show whether a label
    was learned by two incarnations. The audit line is written with ``os.write`` on an
    ``O_APPEND`` descriptor before the model update returns: it is in the kernel when the
    process is killed, whatever Python buffered. Only bookkeeping is added; the worker code
    that runs is the one ``fraudstream worker`` runs.
    """

    def __init__(self, *args: Any, audit_path: Path, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.audit_path = audit_path

    def start(self) -> AuditedWorker:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        env = child_env(self.settings, OMP_NUM_THREADS="1", FRAUDSTREAM_AUDIT=str(self.audit_path),
                        **self.extra_env)
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from reliability.learning_audit import audited_worker; audited_worker()",
             self.worker_id],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
            start_new_session=True,
        )
        log.close()
        return self


def audited_worker() -> None:
    """Entry point of ``AuditedWorker``: patch in the audit hooks, then run the real worker."""
    from streams.model_runtime import ModelRuntime
    from streams.processor import Processor
    from streams.worker import run_worker

    fd = os.open(os.environ["FRAUDSTREAM_AUDIT"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, f"START {os.getpid()}\n".encode())
    learn, capture, save = Processor._learn, ModelRuntime.capture, ModelRuntime.save
    start = ModelRuntime.start

    # pass-through signatures: the hooks must not pin the processor's own (a changed
    # signature once made every audited learn fail, and the crash runs lost transactions)
    def audited_learn(self: Processor, card: Any, tx_id: int, *args: Any, **kwargs: Any) -> bool:
        due = learn(self, card, tx_id, *args, **kwargs)
        os.write(fd, f"T {tx_id}\n".encode())
        return due

    def audited_capture(self: ModelRuntime, *args: Any, **kwargs: Any) -> Any:
        captured = capture(self, *args, **kwargs)
        os.write(fd, b"C\n")
        return captured

    def audited_save(self: ModelRuntime, *args: Any, **kwargs: Any) -> str:
        path = save(self, *args, **kwargs)
        os.write(fd, f"S {self.version}\n".encode())
        return path

    def audited_start(self: ModelRuntime) -> None:
        start(self)
        os.write(fd, f"L {self.version}\n".encode())

    Processor._learn = audited_learn  # type: ignore[method-assign]
    ModelRuntime.capture = audited_capture  # type: ignore[method-assign]
    ModelRuntime.save = audited_save  # type: ignore[method-assign]
    ModelRuntime.start = audited_start  # type: ignore[method-assign]
    run_worker(Settings(), sys.argv[1], "INFO")


@dataclass
class LearningAudit:
    """What the audit file says about learning across incarnations."""

    incarnations: int
    learn_calls: int  # fraudstream_labels_learned_total summed over every incarnation
    distinct: int
    repeated_calls: list[int]  # tx ids whose label went through learn_one more than once
    final_model: Counter[int]  # labels in the lineage of the model that ended the run
    repeated_in_one: list[int] = field(default_factory=list)  # twice by the same incarnation
    learned: set[int] = field(default_factory=set)  # every tx id any incarnation learned

    @property
    def twice_in_final_model(self) -> list[int]:
        return sorted(t for t, n in self.final_model.items() if n > 1)


def read_audit(path: Path) -> LearningAudit:
    """Replay the audit: which labels each incarnation learned and which snapshots it wrote.

    The model that ends the run is the snapshot its incarnation loaded plus what it learned
    since; a snapshot is in turn the one its writer loaded plus what the writer learned before
    writing it. Expanding that chain gives, per label, how many times it is in the final model.
    """
    incarnations: list[dict[str, Any]] = []
    snapshots: dict[int, tuple[int, int]] = {}  # version -> (incarnation, learns before it)
    captured = 0  # learns before the latest capture (a snapshot is written after a flush)
    for line in path.read_text().splitlines():
        tag, _, arg = line.partition(" ")
        if tag == "START":
            incarnations.append({"loaded": 0, "learned": []})
        elif tag == "L":
            incarnations[-1]["loaded"] = int(arg)
        elif tag == "T":
            incarnations[-1]["learned"].append(int(arg))
        elif tag == "C":  # the model captured here is what the next "S" writes
            captured = len(incarnations[-1]["learned"])
        elif tag == "S":
            snapshots[int(arg)] = (len(incarnations) - 1, captured)

    def lineage(inc: int, upto: int) -> Counter[int]:
        loaded = incarnations[inc]["loaded"]
        base = Counter[int]()
        if loaded:
            writer, n = snapshots[loaded]
            base = lineage(writer, n)
        base.update(incarnations[inc]["learned"][:upto])
        return base

    calls = Counter(t for inc in incarnations for t in inc["learned"])
    in_one = sorted({t for inc in incarnations
                     for t, n in Counter(inc["learned"]).items() if n > 1})
    last = len(incarnations) - 1
    final = lineage(last, len(incarnations[last]["learned"])) if incarnations else Counter()
    return LearningAudit(
        incarnations=len(incarnations), learn_calls=sum(calls.values()), distinct=len(calls),
        repeated_calls=sorted(t for t, n in calls.items() if n > 1), final_model=final,
        repeated_in_one=in_one, learned=set(calls),
    )
