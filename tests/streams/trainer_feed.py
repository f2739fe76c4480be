"""Feeding a trainer offline, the way ``run_trainer`` reads the pipeline's topics."""

from __future__ import annotations

import pandas as pd

from models.evaluate import prepare
from streams.trainer import Trainer


def feed_trainer(trainer: Trainer, df: pd.DataFrame) -> list[dict]:
    """Scores and labels in event-time order; a snapshot whenever one is due."""
    data = prepare(df, delay_days=7.0, labels="data")
    ids = df.tx_id.to_numpy()  # prepare() keeps the (ts, tx_id) order ``world`` has
    events = [(float(ts), 0, i) for i, ts in enumerate(data.ts)]
    events += [(float(k), 1, i) for i, k in enumerate(data.label_ts)]
    events.sort()
    notes = []
    for _, kind, i in events:
        if kind == 0:
            trainer.on_score({"tx_id": int(ids[i]), "ts": float(data.ts[i]),
                              "features": data.X[i].tolist()})
        else:
            trainer.on_label({"tx_id": int(ids[i]), "fraud": int(data.fraud[i]),
                              "known_at": float(data.label_ts[i])})
        if trainer.snapshot_due() and (trainer.online or trainer.fit_batch()):
            notes.append(trainer.snapshot())
    return notes
