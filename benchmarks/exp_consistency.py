"""Experiment (not in the pipeline): a consistency round after SFT, for irrelevant-context robustness.

    python benchmarks/exp_consistency.py --run DIR --out OUT [--facts 300] [--steps 60] [--lr 4e-4] [--replay 150]

DIR is a finished pipeline run (params.yaml, data/, models/tuned). The tuned model answers,
closed-book, questions about training-split facts it never saw in a parametric setting; those
answers, right or made up, become the targets of a second, short LoRA SFT round on the same
questions asked closed-book and beside an irrelevant passage, with `--replay` examples of the
original training set mixed in. Then every test split is evaluated. The idea: robustness misses
are made-up answers that move with any passage, and this round trains the model's own made-up
answers to stay put. Costs a generation pass and a second training round (see results.md).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TQDM_MININTERVAL", "30")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--facts", type=int, default=300)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--lr", type=float, default=4e-4)
    ap.add_argument("--replay", type=int, default=150)
    args = ap.parse_args()

    from tasks import prompt
    from tasks.atomic import write_jsonl
    from tasks.evaluate import evaluate_items
    from tasks.facts import read_relations
    from tasks.generate import generate
    from tasks.metrics import first_sentence
    from tasks.modeling import load_model
    from tasks.params import load_params
    from tasks.probe import load_beliefs, load_facts
    from tasks.schema import EvalItem, read_jsonl
    from tasks.synthesize import synthesize
    from tasks.train import train_sft

    run, out = args.run, args.out
    params = load_params(run / "params.yaml")
    facts = load_facts(run / "data" / "facts.jsonl")
    train = read_jsonl(run / "data" / "train.jsonl")
    seen_memory = {(r["relation"], r["subject"]) for r in train if r["setting"] in ("closed_book", "ctx_irrelevant")}
    # irrelevant-context prompts for every training fact (another seed: other distractors), each fact once
    fresh = params.synthesize.model_copy(update={
        "unknown_belief": "world", "n_train": 1500, "n_val": 0, "n_test_per_setting": 1, "n_ood_per_setting": 0,
        "mix": {"ctx_irrelevant": 1.0}})
    rows, taken = [], set()
    for r in synthesize(facts, read_relations(run / "data" / "relations.json"), load_beliefs(run / "data" / "probe.jsonl"),
                        fresh, params.facts, seed=params.base.seed + 1)["train"]:
        key = (r["relation"], r["subject"])
        if key not in seen_memory and key not in taken:
            taken.add(key)
            rows.append(r)
    random.Random(0).shuffle(rows)
    rows = rows[: args.facts]

    t = time.perf_counter()
    model, tok = load_model(run / "models" / "tuned")
    answers = generate(model, tok, [prompt.render(tok, r["question"]) for r in rows],
                       params.evaluate.batch_size, params.evaluate.max_new_tokens)
    del model
    gen_s = time.perf_counter() - t
    data = []
    for r, a in zip(rows, answers):
        own = first_sentence(a).strip()
        if own:
            for contexts in (r["contexts"], []):
                data.append({"question": r["question"], "contexts": contexts, "instruction": None, "completion": own})
    replay = list(train)
    random.Random(1).shuffle(replay)
    data += replay[: args.replay]
    random.Random(2).shuffle(data)
    write_jsonl(out / "data" / "train.jsonl", data)

    t = time.perf_counter()
    tp = params.train.model_copy(update={"max_steps": args.steps, "learning_rate": args.lr, "warmup_ratio": 0.1})
    train_sft(tp, params.base.seed, run / "models" / "tuned", out / "data", out / "adapter", out / "tuned", out / "live")
    train_s = time.perf_counter() - t
    print(f"{len(rows)} facts, {len(data)} examples; generation {gen_s:.0f} s, round 2 ({args.steps} steps) {train_s:.0f} s")

    model, tok = load_model(out / "tuned")
    results = {}
    for split in ("test", "test_ood_relation", "test_ood_phrasing"):
        items = [EvalItem.from_example(r) for r in read_jsonl(run / "data" / f"{split}.jsonl")]
        ev = evaluate_items(model, tok, items, params.evaluate.batch_size, params.evaluate.max_new_tokens, desc=split)
        write_jsonl(out / "predictions" / f"tuned_{split}.jsonl", ev.predictions)
        results[split] = {k: ev.metrics.get(k) for k in ("adherence_by_setting", "closed_book_accuracy",
                                                         "irrelevant_robustness", "irrelevant_robustness_known")}
        print(split, json.dumps(results[split]), flush=True)


if __name__ == "__main__":
    main()
