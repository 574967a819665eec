"""A run's tuned model moved part of the way back to its base (WiSE-FT, Wortsman et al. 2022):
weights base + SCALE x (tuned - base), for the other benchmark scripts to answer with.

    python benchmarks/wise_ft.py RUN SCALE OUT
    python benchmarks/wide_eval.py retention --run RUN --against OUT ...

Interpolating toward the base is the cheapest "less invasive adaptation" issue 12 lists: no
training, and with SCALE < 1 every learned change shrinks alike. For an SFT LoRA it is the
adapter merged at SCALE x its alpha. OUT is laid out as a run (models/tuned, and RUN's test
splits in data/, so `--against` can check they are the same questions).
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from tasks.schema import BASE_DIR, DATA_DIR, TUNED_DIR

WEIGHTS = "model.safetensors"


def interpolate(run: Path, scale: float, out: Path) -> int:
    """Writes OUT; returns how many tensors training had changed (and SCALE now moves)."""
    import torch
    from safetensors.torch import load_file, save_file

    base, tuned = load_file(run / BASE_DIR / WEIGHTS), load_file(run / TUNED_DIR / WEIGHTS)
    if base.keys() != tuned.keys():
        raise SystemExit(f"{run}: models/base and models/tuned hold different tensors; merged SFT or DPO runs only")
    shutil.copytree(run / TUNED_DIR, out / TUNED_DIR, dirs_exist_ok=True)
    save_file({k: (base[k] + scale * (tuned[k] - base[k])).contiguous() for k in tuned},
              str(out / TUNED_DIR / WEIGHTS), metadata={"format": "pt"})
    (out / DATA_DIR).mkdir(parents=True, exist_ok=True)
    for f in (run / DATA_DIR).glob("test*.jsonl"):
        shutil.copy(f, out / DATA_DIR / f.name)
    return sum(not torch.equal(base[k], tuned[k]) for k in tuned)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("scale", type=float, help="0: the base, 1: the tuned model")
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    if not 0.0 <= args.scale <= 1.0:
        ap.error("scale: between 0 (the base) and 1 (the tuned model)")
    changed = interpolate(args.run, args.scale, args.out)
    print(f"{args.out}: base + {args.scale} x (tuned - base) on the {changed} tensors training changed")


if __name__ == "__main__":
    main()
