"""GPU check for the train/evaluate stages (run on a CUDA machine; prints JSON, writes $OUT/gpu_check.json).

    python scripts/gpu_check.py --data data --base-config models/base --steps 40   # or: make gpu-check

It builds a SmolLM2-135M-shaped model with random weights from the carried config and the
real tokenizer (the real weights are too large to carry), then runs the kpref train stage
with SFT then DPO (must pick CUDA + bf16) and the evaluate stage on the real synthesized
splits, and times SFT against the same work forced onto the CPU. It prints the card, tokens/s
of each phase, the peak GPU memory and whether the model card was written. Random weights: the
adherence figures are meaningless; device choice, dtype, artifacts and speed are what it checks.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path


def _last(tsv: Path) -> float | None:
    return float(tsv.read_text().splitlines()[-1].split("\t")[-1]) if tsv.exists() else None


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default="data")
    ap.add_argument("--base-config", default="models/base")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--cpu-steps", type=int, default=4)
    ap.add_argument("--dpo-steps", type=int, default=20)
    ap.add_argument("--work", default="/tmp/kpref-gpu")
    args = ap.parse_args()

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from tasks.core.prompt import conversation
    from tasks.core.schema import SPLITS
    from tasks.evaluate import evaluate_stage
    from tasks.params.full import load_params
    from tasks.params.train import TrainParams
    from tasks.runtime.modeling import load_model, pick_device
    from tasks.train import train

    source, base_config = Path(args.data).resolve(), Path(args.base_config).resolve()
    params_path = Path("params.yaml").resolve()
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    # Outside any git repo: dvclive would otherwise try to `dvc init` the copy it runs in.
    os.chdir(work)
    data = work / "data"
    data.mkdir()
    for split in SPLITS:  # the splits not carried are evaluated as empty (skipped)
        src = source / f"{split}.jsonl"
        (data / f"{split}.jsonl").write_text(src.read_text() if src.exists() else "")
    base = work / "base"
    cfg = AutoConfig.from_pretrained(base_config)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(cfg, dtype=torch.float32).save_pretrained(base, safe_serialization=True)
    AutoTokenizer.from_pretrained(base_config).save_pretrained(base)

    dev = pick_device("auto")
    out: dict = {
        "torch": torch.__version__,
        "cuda": torch.cuda.is_available(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "picked_device": dev.name,
        "picked_dtype": str(dev.dtype),
    }
    params = load_params(params_path).train
    tok = AutoTokenizer.from_pretrained(base)
    rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    # tokens a step sees: the mean rendered example (prompt + completion) times the batch
    texts = [tok.apply_chat_template(conversation(r)["prompt"] + conversation(r)["completion"], tokenize=False)
             for r in rows[:200]]
    per_example = sum(len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts) / len(texts)
    runs = {}
    for name, device, steps, method in (("cuda", "auto", args.steps, "sft+dpo"),
                                        ("cpu", "cpu", args.cpu_steps, "sft")):
        p = TrainParams.model_validate({**params.model_dump(), "max_steps": steps, "device": device, "method": method,
                                        "dpo": {**params.dpo.model_dump(), "steps": args.dpo_steps}})
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        live = work / f"live_{name}"
        res = train(p, 42, base, data, work / f"adapter_{name}", work / f"tuned_{name}", live)
        # each phase's own time, as its Trainer logged it (dvclive's train/runtime)
        sft_s, dpo_s = (_last(d / "plots/metrics/train/runtime.tsv") for d in (live, live / "dpo"))
        runs[name] = {**res, "wall_s": round(time.perf_counter() - t, 1), "s_per_step": round(sft_s / steps, 3),
                      "sft_tokens_per_s": round(per_example * p.batch_size * steps / sft_s, 1),
                      "model_card": (work / f"tuned_{name}" / "README.md").exists()}
        if dpo_s:  # a pair is a chosen and a rejected sequence
            pairs = p.dpo.batch_size * p.dpo.grad_accum * args.dpo_steps
            runs[name]["dpo_tokens_per_s"] = round(2 * per_example * pairs / dpo_s, 1)
        if name == "cuda" and torch.cuda.is_available():
            runs[name]["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    out["train"] = runs
    out["train_speedup_per_step"] = round(runs["cpu"]["s_per_step"] / runs["cuda"]["s_per_step"], 1)
    m, _ = load_model(work / "tuned_cuda")
    out["eval_model_dtype"] = str(next(m.parameters()).dtype)
    out["eval_model_device"] = str(next(m.parameters()).device)
    out["saved_dtype"] = json.loads((work / "tuned_cuda" / "config.json").read_text()).get("dtype")
    del m
    evald = load_params(params_path).evaluate
    t = time.perf_counter()
    metrics = evaluate_stage(data, {"base": base, "tuned": work / "tuned_cuda"}, evald, work / "metrics.json",
                             work / "pred", work / "adh.csv")
    out["evaluate_wall_s"] = round(time.perf_counter() - t, 1)
    out["evaluate_n"] = metrics["test"]["tuned"]["n"]
    curve = work / "live_cuda/plots/metrics/loss.tsv"  # absent when fewer steps ran than train.logging_steps
    out["loss_curve_rows"] = len(curve.read_text().splitlines()) - 1 if curve.exists() else 0
    text = json.dumps(out, indent=2)
    print(text)
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_check.json").write_text(text)


if __name__ == "__main__":
    main()
