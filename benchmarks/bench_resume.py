"""A train stage killed mid-run and started again, on the default model and data, against the
uninterrupted run that `dvc repro` already made.

    python benchmarks/bench_resume.py [--kill-at 100]

Runs `kpref stage train` in this workspace, SIGKILLs its whole process group as soon as the SFT
checkpoint of step --kill-at is complete on disk (the Trainer writes trainer_state.json last),
checks that no model was written, runs the stage again to the end and compares the result with
the models/tuned and kpref_train.json that were there before: the resumed step, training and
validation loss, the largest weight difference (absolute, and relative to the weight's own
scale), and the greedy answers of both models to --questions held-out-subject questions
across every setting. On the CPU the resumed run repeats the same bf16 arithmetic, so its differences
should be at float-noise level: far below the differences between two seeds.

Needs a finished `dvc repro` of the default (models/base, models/tuned, data/). It restores the
uninterrupted models/ when done, so `dvc status` is unchanged.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUTS = ("models/tuned", "models/adapter", "reports/train")


def train_stage() -> list[str]:
    return [sys.executable, "-c", "from flows.cli import app; app()", "stage", "train", "--root", str(ROOT)]


def kill_after_checkpoint(step: int) -> float:
    """Start the stage and SIGKILL it once checkpoint-`step` of the SFT phase is whole: seconds it ran."""
    proc = subprocess.Popen(train_stage(), cwd=ROOT, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t = time.perf_counter()
    pattern = f"*/sft/checkpoint-{step}/trainer_state.json"
    while not any((ROOT / ".kpref_cache" / "train").glob(pattern)):
        if proc.poll() is not None:
            raise SystemExit(f"the stage ended (rc {proc.returncode}) before its step-{step} checkpoint; "
                             "is train.checkpoint_steps a divisor of it?")
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    return time.perf_counter() - t


def weight_diff(a: Path, b: Path) -> tuple[float, float]:
    """The largest absolute difference over all tensors, and the largest relative to its tensor's scale."""
    from safetensors.torch import load_file

    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    assert wa.keys() == wb.keys()
    worst_abs = worst_rel = 0.0
    for k in wa:
        diff = (wa[k].float() - wb[k].float()).abs().max().item()
        worst_abs = max(worst_abs, diff)
        worst_rel = max(worst_rel, diff / max(wa[k].float().abs().max().item(), 1e-12))
    return worst_abs, worst_rel


def same_answers(a: Path, b: Path, n: int) -> tuple[int, int]:
    """How many of n held-out-subject questions (every setting) the two models answer word for word alike."""
    from tasks.core.schema import EvalItem, read_jsonl
    from tasks.evaluation.predict import predict
    from tasks.params.full import load_params
    from tasks.runtime.modeling import load_model

    ev = load_params(ROOT / "params.yaml").evaluate
    items = [EvalItem.from_example(r) for r in read_jsonl(ROOT / "data" / "test.jsonl")]
    items = items[:: max(1, len(items) // n)][:n]  # every setting, not the file's first ones
    got = []
    for d in (a, b):
        model, tok = load_model(d, precision=ev.precision)
        got.append([r["prediction"] for r in predict(model, tok, items, ev.batch_size, ev.max_new_tokens)])
        del model
    return sum(x == y for x, y in zip(*got)), len(items)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kill-at", type=int, default=100)
    ap.add_argument("--questions", type=int, default=120)
    args = ap.parse_args()
    clean = json.loads((ROOT / "models/tuned/kpref_train.json").read_text())
    with tempfile.TemporaryDirectory(dir=ROOT) as keep:
        for out in OUTS:  # the uninterrupted run's outputs, restored at the end
            shutil.copytree(ROOT / out, Path(keep) / out)
        try:
            for out in OUTS:  # gone while the stage runs, as dvc repro does
                shutil.rmtree(ROOT / out)
            shutil.rmtree(ROOT / ".kpref_cache" / "train", ignore_errors=True)  # an older checkpoint-N is not ours
            ran = kill_after_checkpoint(args.kill_at)
            print(f"killed after {ran:.0f} s, at the step-{args.kill_at} checkpoint", flush=True)
            assert not (ROOT / "models/tuned").exists(), "a killed stage left a model behind"
            t = time.perf_counter()
            subprocess.run(train_stage(), cwd=ROOT, check=True)
            print(f"the restarted stage took {time.perf_counter() - t:.0f} s", flush=True)
            resumed = json.loads((ROOT / "models/tuned/kpref_train.json").read_text())
            worst_abs, worst_rel = weight_diff(Path(keep) / "models/tuned", ROOT / "models/tuned")
            agree, n = same_answers(Path(keep) / "models/tuned", ROOT / "models/tuned", args.questions)
        finally:
            for out in OUTS:
                shutil.rmtree(ROOT / out, ignore_errors=True)
                shutil.copytree(Path(keep) / out, ROOT / out)
    print(f"resumed at SFT step {resumed.get('resumed_sft_at_step')} of {resumed['steps']}")
    for k in ("train_loss", "eval_loss"):
        print(f"{k}: uninterrupted {clean[k]:.6f}, resumed {resumed[k]:.6f} (difference {resumed[k] - clean[k]:+.2e})")
    print(f"weights: largest difference {worst_abs:.2e} absolute, {worst_rel:.2e} of the tensor's largest weight")
    print(f"greedy answers alike on {agree} of {n} held-out-subject questions")


if __name__ == "__main__":
    main()
