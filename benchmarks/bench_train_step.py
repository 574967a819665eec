"""Seconds per SFT step: TRL's own SFTTrainer against kpref's completion-head trainer.

    python benchmarks/bench_train_step.py [--steps 16] [--rounds 2]

Both train the real base model (models/base) on the first examples of data/train.jsonl with
the LoRA, batch size, precision and sampling of params.yaml, alternating (TRL, kpref, TRL, ...)
so that drift in the machine's speed falls on both. Prints s/step per run, the ratio, and the
training loss of each (the two compute the same loss; the per-run losses should agree to a few
parts in 10^4 under bf16). Needs a finished `dvc repro` (models/base, data/train.jsonl).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TQDM_DISABLE", "1")


def run(kind: str, steps: int) -> tuple[float, float]:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from trl import SFTConfig, SFTTrainer

    from tasks.modeling import pick_device
    from tasks.params import load_params
    from tasks.schema import read_jsonl
    from tasks.train import _completion_head_trainer, lora_targets, sft_rows

    params = load_params(ROOT / "params.yaml")
    p = params.train
    device = pick_device("cpu", p.precision)
    rows = sft_rows(read_jsonl(ROOT / "data" / "train.jsonl")[: steps * p.batch_size])
    base = ROOT / "models" / "base"
    tok = AutoTokenizer.from_pretrained(base)
    set_seed(params.base.seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, use_safetensors=True)
    lora = LoraConfig(r=p.lora.r, lora_alpha=p.lora.alpha, lora_dropout=p.lora.dropout,
                      target_modules=lora_targets(model, p.lora.target_modules, p.lora.top_layers),
                      task_type="CAUSAL_LM")
    cls = SFTTrainer if kind == "trl" else _completion_head_trainer()
    with tempfile.TemporaryDirectory() as scratch:
        cfg = SFTConfig(output_dir=scratch, max_steps=steps, per_device_train_batch_size=p.batch_size,
                        learning_rate=p.learning_rate, lr_scheduler_type="cosine", max_length=p.max_length,
                        logging_steps=steps, save_strategy="no", report_to="none", bf16=device.bf16, use_cpu=True,
                        train_sampling_strategy="group_by_length" if p.group_by_length else "random",
                        seed=params.base.seed, data_seed=params.base.seed, disable_tqdm=True)
        trainer = cls(model=model, args=cfg, train_dataset=Dataset.from_list(rows), processing_class=tok,
                      peft_config=lora)
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
