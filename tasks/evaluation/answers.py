"""A model's answers to every evaluation set, and the base model's kept between stages.

The evaluation sets are the synthesized test splits, then the benchmarks params.yaml lists, in
that order. The base model's answers depend only on the base model, those sets and the
evaluate params, so the `evaluate_base` stage writes them once, as files the `evaluate` stage
reads beside the tuned model's: a recipe experiment (a changed train param) answers only the
tuned half of the evaluation.
"""
from __future__ import annotations

from pathlib import Path

from tasks.core.atomic import atomic_dir, write_jsonl
from tasks.core.schema import TEST_SPLITS, EvalItem, KprefError, read_jsonl, read_splits
from tasks.evaluation.shards import predict_sharded
from tasks.params.evaluate import EvaluateParams


def evaluation_sets(data_dir: str | Path, benchmarks: dict[str, list[EvalItem]] | None = None
                    ) -> dict[str, list[EvalItem]]:
    """{set name: items}: every test split, then every benchmark read."""
    sets = {split: [EvalItem.from_example(r) for r in rows] for split, rows in read_splits(data_dir, TEST_SPLITS).items()}
    sets.update(benchmarks or {})
    return sets


def predict_sets(model_dir: str | Path, sets: dict[str, list[EvalItem]], p: EvaluateParams,
                 desc: str, prior: bool = False) -> dict[str, list[dict]]:
    """{set name: prediction rows}, for the non-empty sets: one model load for them all, each set
    in batches of its own, in `p.runner.shards` shards on `p.runner`'s engine (`prior`: the
    model is the base, and measures its certainty where an item carries none; predict)."""
    asked = {name: items for name, items in sets.items() if items}
    return predict_sharded(model_dir, asked, p.precision, p.batch_size, p.max_new_tokens, p.runner, desc=desc,
                           prior=prior)


def answers_file(folder: str | Path, model: str, set_name: str) -> Path:
    return Path(folder) / f"{model}_{set_name}.jsonl"


def write_answers(folder: str | Path, model: str, preds: dict[str, list[dict]]) -> None:
    """One `{model}_{set}.jsonl` per set, the folder swapped in whole."""
    with atomic_dir(folder) as tmp:
        for name, rows in preds.items():
            write_jsonl(answers_file(tmp, model, name), rows)


def read_answers(folder: str | Path, model: str, sets: dict[str, list[EvalItem]]) -> dict[str, list[dict]]:
    """The rows `write_answers` kept, checked against the sets asked now: a missing file or one
    that answers other questions (data or benchmarks changed since) stops the run, naming it."""
    out = {}
    for name, items in sets.items():
        if not items:
            continue
        path = answers_file(folder, model, name)
        if not path.exists():
            raise KprefError(f"{path}: not found; `kpref stage evaluate_base` (or `dvc repro`) writes the "
                             f"{model} model's answers to {name!r}")
        rows = read_jsonl(path)
        if [r.get("id") for r in rows] != [it.id for it in items]:
            raise KprefError(f"{path}: answers other questions than {name!r} asks now (its data changed since); "
                             "run `kpref stage evaluate_base` (or `dvc repro`) again")
        out[name] = rows
    return out
