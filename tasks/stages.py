"""The DVC stages as functions of (params, project root): the one door `dvc repro` and Prefect share.

Paths here are the ones dvc.yaml declares; `tests/test_dvc_yaml.py` keeps the two in step.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from tasks.params import Params

log = logging.getLogger(__name__)

BASE_DIR = "models/base"
ADAPTER_DIR = "models/adapter"
TUNED_DIR = "models/tuned"
FACTS = "data/facts.jsonl"
PROBE = "data/probe.jsonl"
DATA_DIR = "data"
VALIDATION = "reports/validation.json"
DATA_DOCS = "reports/data_docs"
TRAIN_LIVE = "reports/train"
METRICS = "reports/metrics.json"
PREDICTIONS = "reports/predictions"
ADHERENCE_CSV = "reports/plots/adherence.csv"


def base_model(p: Params, root: Path) -> None:
    from tasks.base_model import build_base_model

    build_base_model(p.model, root / BASE_DIR)


def facts(p: Params, root: Path) -> None:
    from tasks.probe import write_facts

    n = len(write_facts(p.facts, root / FACTS))
    log.info("wrote %d facts", n)


def probe(p: Params, root: Path) -> None:
    from tasks.probe import load_facts, run_probe

    run_probe(load_facts(root / FACTS), root / BASE_DIR, p.probe, root / PROBE)


def synthesize(p: Params, root: Path) -> None:
    from tasks.probe import load_facts
    from tasks.schema import read_jsonl
    from tasks.synthesize import synthesize as synth, write_splits

    beliefs = {r["key"]: r["belief"] for r in read_jsonl(root / PROBE)}
    splits = synth(load_facts(root / FACTS), beliefs, p.synthesize, p.base.seed)
    write_splits(splits, root / DATA_DIR)
    log.info("wrote %s", {k: len(v) for k, v in splits.items()})


def validate(p: Params, root: Path) -> None:
    from tasks.validate import run_validation

    s = run_validation(root / DATA_DIR, root / VALIDATION, root / DATA_DOCS, p.validate_.max_failed_examples)
    log.info("data quality gate passed: %d expectations", s["n_expectations"])


def train(p: Params, root: Path) -> None:
    from tasks.train import train_sft

    out = train_sft(p.train, p.base.seed, root / BASE_DIR, root / DATA_DIR, root / ADAPTER_DIR, root / TUNED_DIR,
                    root / TRAIN_LIVE)
    log.info("trained: %s", out)


def evaluate(p: Params, root: Path) -> None:
    from tasks.evaluate import evaluate_stage

    evaluate_stage(root / DATA_DIR / "test.jsonl", {"base": root / BASE_DIR, "tuned": root / TUNED_DIR},
                   p.evaluate.batch_size, p.evaluate.max_new_tokens, root / METRICS, root / PREDICTIONS,
                   root / ADHERENCE_CSV)


def report(p: Params, root: Path) -> None:
    from tasks.report import build_report

    build_report(root / METRICS, root / VALIDATION, root / TRAIN_LIVE, root / PREDICTIONS, root / "reports",
                 root / "reports/figures")


STAGES: dict[str, Callable[[Params, Path], None]] = {
    "base_model": base_model,
    "facts": facts,
    "probe": probe,
    "synthesize": synthesize,
    "validate": validate,
    "train": train,
    "evaluate": evaluate,
    "report": report,
}
