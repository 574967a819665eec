"""Examples/s of the evaluation against an unbatched loop over the same model and examples.

    python benchmarks/bench_evaluate.py [--run .] [--split test] [--n 96]
    python benchmarks/bench_evaluate.py --benchmark mquake PATH [--n 96] [--run-length 16]

`evaluate_items` (what `kpref evaluate` and the evaluate stage run) batches prompts of like
length (`evaluate.batch_size`), runs an opening that several prompts share (a case's edits,
a passage with several questions) through the model once, stops each sequence at its
end-of-turn token, generates each distinct prompt once and scores the confidence gain's bare
prompts with one forward pass. A benchmark's examples are sampled in runs of consecutive
ones, as a file holds them, so its cases keep the questions that share their edits. The
baseline is the loop one would write first: each example alone, `model.generate` with the same
greedy settings and token budget, then the same answer matching. Both run here, one after the
other, on the same examples of RUN's tuned model; the script prints both rates and their ratio
(target: at least 3x). The batched pass does more work (closed-book answers for robustness,
entropies), so the ratio is a floor.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402

from tasks.core import prompt  # noqa: E402
from tasks.core.metrics import matches  # noqa: E402
from tasks.core.schema import EvalItem, read_jsonl  # noqa: E402
from tasks.evaluate import evaluate_items  # noqa: E402
from tasks.evaluation.benchmarks import load_benchmark  # noqa: E402
from tasks.params.full import load_params  # noqa: E402
from tasks.runtime.modeling import load_model  # noqa: E402


@torch.inference_mode()
def unbatched(model, tok, items: list[EvalItem], max_new_tokens: int) -> list[bool]:
    correct = []
    for it in items:
        batch = tok([prompt.render(tok, it.question, it.contexts, it.instruction)], return_tensors="pt",
                    add_special_tokens=False)
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, temperature=None, top_p=None,
                             top_k=None, pad_token_id=tok.pad_token_id)
        correct.append(matches(tok.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True), it.answers))
    return correct


def sample(items: list[EvalItem], n: int, run: int) -> list[EvalItem]:
    """`n` items spread over the file in runs of `run` consecutive ones: a benchmark case's
    questions side by side (beside the same edits or passage) as the evaluation meets them,
    and each setting in the sample. `run` 1: every k-th item."""
    starts = range(0, len(items), max(run, len(items) // max(1, n // run)))
    return [it for s in starts for it in items[s : s + run]][:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", type=Path, default=Path("."))
    ap.add_argument("--split", default="test")
    ap.add_argument("--benchmark", nargs=2, metavar=("FORMAT", "PATH"), default=None)
    ap.add_argument("--n", type=int, default=96)
    ap.add_argument("--run-length", type=int, default=16,
                    help="a benchmark's examples are taken in runs of this many in file order")
    args = ap.parse_args()

    p = load_params(args.run / "params.yaml").evaluate
    if args.benchmark:
        items = load_benchmark(args.benchmark[0], Path(args.benchmark[1]))
    else:
        items = [EvalItem.from_example(r) for r in read_jsonl(args.run / "data" / f"{args.split}.jsonl")]
    items = sample(items, args.n, args.run_length if args.benchmark else 1)
    model, tok = load_model(args.run / "models" / "tuned", precision=p.precision)
    print(f"{len(items)} examples, batch {p.batch_size}, {p.max_new_tokens} new tokens, {torch.get_num_threads()} "
          f"threads, {next(model.parameters()).dtype}")
    unbatched(model, tok, items[:2], p.max_new_tokens)  # warm-up
    t0 = time.perf_counter()
    loop = unbatched(model, tok, items, p.max_new_tokens)
    t_loop = time.perf_counter() - t0
    t0 = time.perf_counter()
    ev = evaluate_items(model, tok, items, p.batch_size, p.max_new_tokens)
    t_eval = time.perf_counter() - t0
    agree = sum(a == b["correct"] for a, b in zip(loop, ev.predictions))
    print(f"unbatched loop: {len(items) / t_loop:.2f} examples/s ({t_loop:.1f} s)")
    print(f"evaluate_items: {len(items) / t_eval:.2f} examples/s ({t_eval:.1f} s)")
    print(f"ratio: {t_loop / t_eval:.2f}x (target >= 3x); same correctness on {agree}/{len(items)} examples")


if __name__ == "__main__":
    main()
