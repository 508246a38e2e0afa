"""Weight averaging of checkpoints of one model (a "model soup").

Two checkpoints that went on from the same weights by different runs sit in one basin of the
loss; the mean of their weights often sits lower in it than either (measured for this model in
`models/results/`). The result keeps the training record of the checkpoint with the most steps
and appends an entry that names every checkpoint averaged and its weight. It has no optimizer
state: training from it starts Adam afresh."""

from datetime import datetime, timezone
from pathlib import Path

import torch


class AverageError(ValueError):
    pass


def parse_weighted(text: str):
    """'path' or 'path:weight' -> (Path, weight)."""
    path, sep, w = text.rpartition(":")
    if not sep or not path or "/" in w:
        return Path(text), 1.0
    try:
        weight = float(w)
    except ValueError:
        raise AverageError(f"{text}: the weight after ':' must be a number")
    if not weight > 0:
        raise AverageError(f"{text}: the weight must be positive")
    return Path(path), weight


def average_checkpoints(weighted) -> dict:
    """weighted: [(path, weight), ...], at least two. Returns the averaged checkpoint."""
    if len(weighted) < 2:
        raise AverageError("average needs at least two checkpoints")
    cks = []
    for path, w in weighted:
        if not Path(path).exists():
            raise AverageError(f"{path} not found")
        cks.append((torch.load(path, map_location="cpu", weights_only=False), float(w), path))
    config = cks[0][0]["config"]
    keys = set(cks[0][0]["model"])
    for ck, _, path in cks[1:]:
        if ck["config"] != config:
            raise AverageError(f"{path}: another model configuration than {cks[0][2]}")
        if set(ck["model"]) != keys:
            raise AverageError(f"{path}: other parameters than {cks[0][2]}")
    total = sum(w for _, w, _ in cks)
    base = max(cks, key=lambda c: c[0]["step"])[0]
    model = {}
    for k, t in base["model"].items():
        if t.is_floating_point():
            # float16 weights (as brought back from a GPU) are averaged in float32
            model[k] = sum(ck["model"][k].float() * (w / total) for ck, w, _ in cks)
        elif all(torch.equal(ck["model"][k], t) for ck, _, _ in cks):
            model[k] = t
        else:
            raise AverageError(f"{k}: integer tensor differs between the checkpoints")
    history = list(base.get("history") or [])
    history.append({"from_step": int(base["step"]),
                    "averaged": [{"step": int(ck["step"]), "weight": round(w / total, 4),
                                  "last_run_device": (ck.get("history") or [{}])[-1].get("device")}
                                 for ck, w, _ in cks]})
    out = {k: v for k, v in base.items() if k not in ("model", "optimizer", "rng", "history")}
    out.update(model=model, history=history)
    if "training" in base:   # the record an export writes into model.json
        out["training"] = {**base["training"], "runs": history,
                           "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    return out
