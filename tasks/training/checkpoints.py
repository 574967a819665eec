"""Training checkpoints that outlive a killed train stage, for the next `dvc repro` to resume from.

A run's checkpoints live under `.kpref_cache/train/<key>/<phase>/checkpoint-N` (not an artifact:
DVC clears a stage's outputs before it runs). The key hashes what decides the weights: the train
params (less the checkpoint interval), the seed, and the hashes of the data and the base weights,
so a run resumes only what the same inputs began. Checkpoints of other inputs are removed, and
the log says which inputs changed. The transformers Trainer writes and reads each checkpoint:
the LoRA adapter, optimizer, scheduler, RNG states and the step, from which it replays the data
order.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


def flatten(d: dict, prefix: str = "") -> dict:
    """{"lora": {"r": 16}} -> {"lora.r": 16}: so a changed input can be named key by key."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


@dataclass(frozen=True)
class Checkpoints:
    run_dir: Path
    every: int  # save every N optimizer steps

    def trainer_args(self, phase: str) -> dict:
        """Trainer arguments that save this phase's checkpoints (two kept: a kill while the newest
        is being written leaves the one before whole)."""
        return {"output_dir": str(self.run_dir / phase), "save_strategy": "steps", "save_steps": self.every,
                "save_total_limit": 2}

    def latest(self, phase: str) -> str | None:
        """The newest complete checkpoint of `phase` (the Trainer writes trainer_state.json last)."""
        done = [c for c in (self.run_dir / phase).glob("checkpoint-*") if (c / "trainer_state.json").exists()]
        return str(max(done, key=lambda c: int(c.name.rsplit("-", 1)[1]))) if done else None

    def finish(self) -> None:
        """The trained model is saved: nothing left to resume."""
        shutil.rmtree(self.run_dir, ignore_errors=True)


def plan(root: Path, every: int, identity: dict, main: bool = True) -> Checkpoints:
    """This run's checkpoint folder under `root`; another run's, of other inputs, is removed with a
    log line naming what changed (by the main process: the others only find the folder)."""
    flat = flatten(identity)
    key = hashlib.sha1(json.dumps(flat, sort_keys=True, default=str).encode()).hexdigest()[:16]
    run_dir = root / key
    if not main:
        return Checkpoints(run_dir, every)
    for other in sorted(p for p in root.glob("*") if p.is_dir() and p != run_dir):
        try:
            before = json.loads((other / "identity.json").read_text())
        except (OSError, ValueError):
            before = {}
        changed = sorted(k for k in flat.keys() | before.keys() if flat.get(k) != before.get(k))
        log.warning("train: checkpoints of an earlier run with other %s are not resumed: starting over",
                    ", ".join(changed) or "inputs")
        shutil.rmtree(other, ignore_errors=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "identity.json").write_text(json.dumps(flat, sort_keys=True, default=str))
    return Checkpoints(run_dir, every)
