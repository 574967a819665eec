"""Is irrelevant-context robustness lost to the model or to the arithmetic?

    python benchmarks/robustness_noise.py [--model models/tuned] [--data data/test.jsonl] [--precision bf16 fp32]

For each precision: robustness with the pipeline's batching and with one prompt at a time,
robustness on the questions the model answers right closed-book, how often the same
closed-book prompt gets the same answer in another batch, and how many misses copy a passage
(name the distractor's answer, or add to the question words found in the context). If
robustness moved with precision or batching, the misses would be noise; if not, they are the
model's. Batch size and new tokens are evaluate's, from params.yaml.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TQDM_DISABLE", "1")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(ROOT / "models" / "tuned"))
    ap.add_argument("--data", default=str(ROOT / "data" / "test.jsonl"))
    ap.add_argument("--precision", nargs="+", default=["bf16", "fp32"])
    args = ap.parse_args()

    from tasks import prompt
    from tasks.evaluate import _same_answer
    from tasks.generate import generate
    from tasks.metrics import answer_residue, matches, normalize, rate
    from tasks.modeling import load_model
    from tasks.params import load_params
    from tasks.schema import EvalItem

    ev = load_params(ROOT / "params.yaml").evaluate
    bs, new_tokens = ev.batch_size, ev.max_new_tokens

    items = [EvalItem.from_example(json.loads(line)) for line in Path(args.data).read_text().splitlines()]
    irr = [it for it in items if it.setting == "ctx_irrelevant"]
    print(f"{len(irr)} ctx_irrelevant questions, model {args.model}")
    for prec in args.precision:
        model, tok = load_model(args.model, precision=prec)
        cb = [prompt.render(tok, it.question) for it in irr]
        ir = [prompt.render(tok, it.question, it.contexts, it.instruction) for it in irr]
        mixed = generate(model, tok, cb + ir, bs, new_tokens)  # as evaluate batches them
        cb_b, ir_b = mixed[: len(irr)], mixed[len(irr):]
        cb_alone = generate(model, tok, cb, bs, new_tokens)  # other batch neighbours
        cb_1, ir_1 = generate(model, tok, cb, 1, new_tokens), generate(model, tok, ir, 1, new_tokens)  # no padding

        def robust(irs, cbs, known_only=False):
            return rate([_same_answer(a, b, it) for a, b, it in zip(irs, cbs, irr)
                         if not known_only or matches(b, it.answers)])

        def copied(pred, it):
            added = answer_residue(pred, it.question)
            return (matches(pred, [(it.source_answers or {}).get("distractor") or ""])
                    or bool(added) and f" {added} " in f" {normalize(' '.join(it.contexts))} ")

        misses = [(a, it) for a, b, it in zip(ir_b, cb_b, irr) if not _same_answer(a, b, it)]
        print(f"- {prec}: robustness batched {robust(ir_b, cb_b)}, one prompt at a time {robust(ir_1, cb_1)}; "
              f"on questions answered right closed-book {robust(ir_b, cb_b, True)}; "
              f"closed-book answer unchanged in other batches {rate([a == b for a, b in zip(cb_b, cb_alone)])}, "
              f"unbatched {rate([a == b for a, b in zip(cb_b, cb_1)])}; "
              f"{sum(copied(a, it) for a, it in misses)} of {len(misses)} misses copy a passage", flush=True)


if __name__ == "__main__":
    main()
