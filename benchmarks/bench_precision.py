"""Why `*.precision: auto` picks bf16 on this CPU, and how much of a prompt the system turn is.

    python benchmarks/bench_precision.py [--model models/base] [--data data/train.jsonl]

Prints matmul throughput fp32 vs bf16 (a LoRA-layer-sized product, per core and on all cores)
as a ratio, and, when the base model and training split exist, the share of an average
training example's tokens that the chat template's default system turn takes.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def gflops(dtype: torch.dtype, threads: int, n: int = 50) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(1024, 576, dtype=dtype), torch.randn(576, 1536, dtype=dtype)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    for _ in range(n):
        a @ b
    return 2 * 1024 * 576 * 1536 * n / (time.perf_counter() - t) / 1e9


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=str(ROOT / "models/base"))
    ap.add_argument("--data", default=str(ROOT / "data/train.jsonl"))
    args = ap.parse_args()
    from tasks.runtime.modeling import cpu_has_fast_bf16

    print(f"cpu_has_fast_bf16: {cpu_has_fast_bf16()}")
    for threads in (1, torch.get_num_threads()):
        f32, bf16 = gflops(torch.float32, threads), gflops(torch.bfloat16, threads)
        print(f"{threads} thread(s): fp32 {f32:.1f} GFLOPS, bf16 {bf16:.1f} GFLOPS, bf16/fp32 {bf16 / f32:.2f}x")
    if Path(args.model, "tokenizer.json").exists() and Path(args.data).exists():
        from transformers import AutoTokenizer

        from tasks.core import prompt

        tok = AutoTokenizer.from_pretrained(args.model)
        rows = [json.loads(line) for line in open(args.data, encoding="utf-8")]
        lengths = [len(tok(prompt.render(tok, r["question"], r["contexts"], r["instruction"]) + r["completion"],
                           add_special_tokens=False)["input_ids"]) for r in rows]
        bare = tok.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False, add_generation_prompt=True)
        no_sys = tok.apply_chat_template([{"role": "system", "content": ""}, {"role": "user", "content": "x"}],
                                         tokenize=False, add_generation_prompt=True)
        system = len(tok(bare, add_special_tokens=False)["input_ids"]) - len(tok(no_sys, add_special_tokens=False)["input_ids"])
        mean = statistics.mean(lengths)
        print(f"training examples: mean {mean:.1f} tokens; default system turn {system} tokens "
              f"({system / mean:.0%} of the mean)")


if __name__ == "__main__":
    main()
