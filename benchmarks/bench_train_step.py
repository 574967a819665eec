"""Seconds per SFT step: TRL's own SFTTrainer against kpref's completion-head trainer.

    python benchmarks/bench_train_step.py [--steps 16] [--rounds 2]

Both train the real base model (models/base) on the first examples of data/train.jsonl with
the pipeline's own SFT and LoRA settings (params.yaml `train`, cut to --steps), alternating
(TRL, kpref, TRL, ...) so that drift in the machine's speed falls on both. Prints s/step per
run, the ratio, and the training loss of each (the two compute the same loss; the losses
should agree to a few parts in 10^3 under bf16). Needs a finished `dvc repro` (models/base, data/train.jsonl).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("TQDM_DISABLE", "1")


def run(kind: str, steps: int) -> tuple[float, float]:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, set_seed
    from trl import SFTTrainer

    from tasks.modeling import load_tokenizer, pick_device
    from tasks.params import load_params
    from tasks.prompt import conversation
    from tasks.schema import BASE_DIR, read_jsonl
    from tasks.train import completion_head_trainer, lora_config, sft_config

    params = load_params(ROOT / "params.yaml")
    p = params.train.model_copy(update={"max_steps": steps, "logging_steps": steps})
    device = pick_device("cpu", p.precision)
    rows = [conversation(r) for r in read_jsonl(ROOT / "data" / "train.jsonl")[: steps * p.batch_size]]
    base = ROOT / BASE_DIR
    tok = load_tokenizer(base)
    set_seed(params.base.seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, use_safetensors=True)
    cls = SFTTrainer if kind == "trl" else completion_head_trainer()
    with tempfile.TemporaryDirectory() as scratch:
        # the pipeline's own SFT and LoRA settings (train.*), cut to `steps`
        trainer = cls(model=model, args=sft_config(p, scratch, device, params.base.seed, evaluate=False),
                      train_dataset=Dataset.from_list(rows), processing_class=tok, peft_config=lora_config(model, p))
        t = time.perf_counter()
        result = trainer.train()
        return (time.perf_counter() - t) / result.global_step, result.training_loss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    times: dict[str, list[float]] = {"trl": [], "kpref": []}
    for r in range(args.rounds):
        for kind in times:
            s, loss = run(kind, args.steps)
            times[kind].append(s)
            print(f"round {r + 1} {kind:5s}: {s:.3f} s/step over {args.steps} steps, train loss {loss:.4f}", flush=True)
    trl, ours = statistics.median(times["trl"]), statistics.median(times["kpref"])
    print(f"median s/step: TRL {trl:.3f}, kpref {ours:.3f}; kpref is {trl / ours:.2f}x TRL's speed")


if __name__ == "__main__":
    main()
