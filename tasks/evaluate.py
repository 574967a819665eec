"""Stage evaluate: how well a model obeys the hierarchy, on synthesized, benchmark or user conflict sets.

    params: evaluate        reads: models/tuned, reports/base_predictions/, data/test*.jsonl, inputs/benchmarks/
                            writes: reports/metrics.json, reports/summary.json, reports/predictions/,
                                    reports/plots/adherence.csv

`tasks/evaluation/predict.py` answers every item one way and `tasks/evaluation/scoring.py` scores it: the DVC stage has the
tuned model answer every test split and every benchmark params.yaml lists (tasks/evaluation/benchmarks.py
turns each into the same items), in shards (tasks/evaluation/shards.py), and scores those answers beside
the base model's, which the evaluate_base stage wrote (tasks/evaluation/answers.py);
`evaluate_items` does both for `kpref evaluate` on a user's JSONL file or one benchmark file.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from tasks.core.atomic import write_json, write_jsonl, write_text
from tasks.core.schema import (
    ADHERENCE_CSV,
    BASE_PREDICTIONS,
    DATA_DIR,
    METRICS,
    NOT_MODELS,
    PREDICTIONS,
    SUMMARY,
    TUNED_DIR,
    EvalItem,
)
from tasks.evaluation.answers import (
    answers_file,
    evaluation_sets,
    predict_sets,
    read_answers,
)
from tasks.evaluation.benchmarks import read_benchmarks
from tasks.evaluation.predict import predict
from tasks.evaluation.prior import with_base_certainty
from tasks.evaluation.scoring import (
    headline_summary,
    paired_deltas,
    robustness_on_base_known,
    summarize,
)
from tasks.params.evaluate import EvaluateParams
from tasks.params.section import StageParams

log = logging.getLogger(__name__)


class Params(StageParams):
    """The sections of params.yaml this stage reads."""
    evaluate: EvaluateParams


def run(p: Params, root: Path) -> None:
    benchmarks, skipped = read_benchmarks(p.evaluate.benchmarks, root)
    base = read_answers(root / BASE_PREDICTIONS, "base", evaluation_sets(root / DATA_DIR, benchmarks))
    metrics = evaluate_stage(root / DATA_DIR, {"tuned": root / TUNED_DIR}, p.evaluate, root / METRICS,
                             root / PREDICTIONS, root / ADHERENCE_CSV, benchmarks, skipped, answered={"base": base})
    write_json(root / SUMMARY, headline_summary(metrics))
    log.info("tuned adherence: %s", {name: m.get("tuned", {}).get("adherence") for name, m in metrics.items()})


@dataclass
class Evaluation:
    metrics: dict
    predictions: list[dict]


def evaluate_items(model, tok, items: Sequence[EvalItem], batch_size: int = 16, max_new_tokens: int = 24,
                   desc: str = "evaluating", prior: bool = True) -> Evaluation:
    """Answers and figures for a loaded model: what `kpref evaluate` and the benchmarks run. A
    conflict item that carries no base certainty is binned by this model's own (`prior`:
    predict's), unless the caller bins it by another's (with_base_certainty)."""
    preds = predict(model, tok, items, batch_size, max_new_tokens, desc, prior=prior)
    return Evaluation(summarize(items, preds), preds)


def evaluate_model(model_dir: str | Path, items: Sequence[EvalItem], batch_size: int, max_new_tokens: int,
                   desc: str, precision: str = "auto", prior: bool = True) -> Evaluation:
    from tasks.runtime.modeling import load_model

    model, tok = load_model(model_dir, precision=precision)
    return evaluate_items(model, tok, items, batch_size, max_new_tokens, desc=desc, prior=prior)


def evaluate_stage(data_dir: str | Path, models: dict[str, str | Path], p: EvaluateParams, metrics_path: str | Path,
                   predictions_dir: str | Path, adherence_csv: str | Path,
                   benchmarks: dict[str, list[EvalItem]] | None = None, skipped: dict[str, str] | None = None,
                   answered: dict[str, dict[str, list[dict]]] | None = None) -> dict:
    """Every model on every test split and benchmark: metrics[name][model], plus tuned - base
    deltas; a skipped benchmark is metrics[name]["skipped"], its reason. A model of `models`
    answers all sets in one pass, in `evaluate.runner.shards` shards on `evaluate.runner`'s
    engine; one of `answered` ({model: {set: rows}}) has answered them already (evaluate_base)."""
    splits = evaluation_sets(data_dir, benchmarks)
    metrics: dict = {split: {} for split in splits}
    answers = dict(answered or {})
    answers.update((name, predict_sets(path, splits, p, desc=name)) for name, path in models.items())
    if "base" in answers:  # every model's answers binned by the base model's certainty
        answers = {name: by_set if name == "base" else
                   {s: with_base_certainty(answers["base"][s], rows) for s, rows in by_set.items()}
                   for name, by_set in answers.items()}
    for name, by_set in answers.items():
        for split, rows in by_set.items():
            metrics[split][name] = summarize(splits[split], rows)
            write_jsonl(answers_file(predictions_dir, name, split), rows)
    for split, m in metrics.items():
        if "base" in m and "tuned" in m:
            base, tuned = answers["base"][split], answers["tuned"][split]
            m["delta"] = paired_deltas(base, tuned)
            for name, rows in (("base", base), ("tuned", tuned)):
                m[name].update(robustness_on_base_known(base, rows))
    metrics.update({name: {"skipped": why} for name, why in (skipped or {}).items()})
    write_text(adherence_csv, adherence_table(metrics))
    write_json(metrics_path, metrics)
    return metrics


def adherence_table(metrics: dict) -> str:
    """split,setting,model,adherence as CSV: the plot dvc.yaml declares."""
    rows = ["split,setting,model,adherence"] + [
        f"{split},{s},{name},{v}"
        for split, m in metrics.items() for name, mm in m.items() if name not in NOT_MODELS
        for s, v in mm["adherence_by_setting"].items()
    ]
    return "\n".join(rows) + "\n"
