"""A run's tuned model moved part of the way back to its base (WiSE-FT, Wortsman et al. 2022), or
averaged with other seeds' tuned models (a uniform model soup, Wortsman et al. 2022): weights
base + SCALE x the mean of the runs' (tuned - base), for the other benchmark scripts to answer with.

    python benchmarks/wise_ft.py RUN SCALE OUT
    python benchmarks/wise_ft.py RUN 1.0 OUT --soup RUN_SEED7 RUN_SEED1
    python benchmarks/wise_ft.py RUN 1.0 OUT --random 16 [--seed 0]
    python benchmarks/wide_eval.py retention --run RUN --against OUT ...

Interpolating toward the base is the cheapest "less invasive adaptation" issue 12 lists: no
training, and with SCALE < 1 every learned change shrinks alike. For an SFT LoRA it is the
adapter merged at SCALE x its alpha. A soup averages what several seeds learned: where they agree
it stays, where one seed's draw pulled alone it shrinks. OUT is laid out as a run (models/tuned,
and RUN's test splits in data/, so `--against` can check they are the same questions). The other
seeds drew their own held-out subjects, so RUN's `test` subjects may be among their training ones:
read a soup on the splits no seed trains on (held-out relation and domain) and on public
benchmarks.

`--random R` is a control, not a model: each tensor's change is replaced by a random one of rank R
(Gaussian factors, as a LoRA of rank R would add) and the same Frobenius norm. Which of the base's
answers a change that large flips whatever its direction tells fragile answers from ones that
training's own direction took (issue 12).
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from tasks.schema import BASE_DIR, DATA_DIR, TUNED_DIR

WEIGHTS = "model.safetensors"


def random_like(delta, rank: int, gen):
    """A random change of `delta`'s shape and Frobenius norm, of rank `rank` where it is a matrix."""
    import torch

    if delta.dim() == 2:
        r = torch.randn(delta.shape[0], rank, generator=gen) @ torch.randn(rank, delta.shape[1], generator=gen)
    else:
        r = torch.randn(delta.shape, generator=gen)
    return r * (delta.norm() / r.norm()) if delta.any() else torch.zeros_like(delta)


def interpolate(runs: list[Path], scale: float, out: Path, random_rank: int = 0, seed: int = 0) -> int:
    """Writes OUT, laid out as runs[0]; returns how many tensors training had changed (and SCALE now moves).
    With `random_rank`, each change is a random one of its size (random_like) instead."""
    import torch
    from safetensors.torch import load_file, save_file

    base = load_file(runs[0] / BASE_DIR / WEIGHTS)
    delta: dict = {}
    for run in runs:
        tuned = load_file(run / TUNED_DIR / WEIGHTS)
        if base.keys() != tuned.keys():
            raise SystemExit(f"{run}: models/tuned holds other tensors than {runs[0]}/models/base; "
                             "merged SFT or DPO runs of one base only")
        if run != runs[0] and any(not torch.equal(base[k], v) for k, v in load_file(run / BASE_DIR / WEIGHTS).items()):
            raise SystemExit(f"{run}: models/base differs from {runs[0]}'s; a soup needs one base model")
        for k, v in tuned.items():  # float32 sums: bf16 deltas of a few seeds lose nothing in the mean
            d = v.float() - base[k].float()
            delta[k] = delta[k] + d if k in delta else d
    if random_rank:
        gen = torch.Generator().manual_seed(seed)
        delta = {k: random_like(d, random_rank, gen) for k, d in sorted(delta.items())}
    shutil.copytree(runs[0] / TUNED_DIR, out / TUNED_DIR, dirs_exist_ok=True)
    save_file({k: (base[k].float() + scale / len(runs) * delta[k]).to(base[k].dtype).contiguous() for k in base},
              str(out / TUNED_DIR / WEIGHTS), metadata={"format": "pt"})
    (out / DATA_DIR).mkdir(parents=True, exist_ok=True)
    for f in (runs[0] / DATA_DIR).glob("test*.jsonl"):
        shutil.copy(f, out / DATA_DIR / f.name)
    return sum(bool(d.any()) for d in delta.values())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("scale", type=float, help="0: the base, 1: the tuned model (or the soup's mean)")
    ap.add_argument("out", type=Path)
    ap.add_argument("--soup", type=Path, nargs="+", default=[], metavar="RUN",
                    help="other runs of the same base (other seeds) whose changes are averaged with RUN's")
    ap.add_argument("--random", type=int, default=0, metavar="RANK",
                    help="a control: each change replaced by a random one of this rank and the same norm")
    ap.add_argument("--seed", type=int, default=0, help="--random's draw")
    args = ap.parse_args()
    if not 0.0 <= args.scale <= 1.0:
        ap.error("scale: between 0 (the base) and 1 (the tuned model)")
    runs = [args.run, *args.soup]
    changed = interpolate(runs, args.scale, args.out, args.random, args.seed)
    what = "tuned - base" if len(runs) == 1 else f"the mean of {len(runs)} runs' tuned - base"
    if args.random:
        what = f"a random rank-{args.random} change the size of {what} (seed {args.seed})"
    print(f"{args.out}: base + {args.scale} x ({what}) on the {changed} tensors training changed")


if __name__ == "__main__":
    main()
