"""Stage evaluate_base: the base model's answers to every test split and listed benchmark.

    params: evaluate        reads: models/base, data/test*.jsonl, inputs/benchmarks/
                            writes: reports/base_predictions/

Each conflict item's row carries the base model's certainty of what memory says: the item's own
(a synthesized example's, from the probe) or, for a benchmark's, measured here (tasks/evaluation/prior.py).
A stage of its own because those answers change only with the base model, the test data and the
evaluate params: a recipe experiment (a train param) reruns only the tuned model's half of the
evaluation (the `evaluate` stage), which scores both (tasks/evaluation/answers.py).
"""
from __future__ import annotations

import logging
from pathlib import Path

from tasks.core.schema import BASE_DIR, BASE_PREDICTIONS, DATA_DIR
from tasks.evaluation.answers import evaluation_sets, predict_sets, write_answers
from tasks.evaluation.benchmarks import read_benchmarks
from tasks.params.evaluate import EvaluateParams
from tasks.params.section import StageParams

log = logging.getLogger(__name__)


class Params(StageParams):
    """The sections of params.yaml this stage reads."""
    evaluate: EvaluateParams


def run(p: Params, root: Path) -> None:
    benchmarks, _ = read_benchmarks(p.evaluate.benchmarks, root)  # the evaluate stage reports the skipped
    sets = evaluation_sets(root / DATA_DIR, benchmarks)
    preds = predict_sets(root / BASE_DIR, sets, p.evaluate, "base", prior=True)
    write_answers(root / BASE_PREDICTIONS, "base", preds)
    log.info("base answers: %s", {name: len(rows) for name, rows in preds.items()})
