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
RELATIONS = "data/relations.json"
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

    n = len(write_facts(p.facts, p.base.seed, root / FACTS, root / RELATIONS))
    log.info("wrote %d facts", n)


def probe(p: Params, root: Path) -> None:
    from tasks.facts import read_relations
    from tasks.probe import DEFAULT_CACHE, facts_to_probe, load_facts, run_probe

    facts = facts_to_probe(load_facts(root / FACTS), p.facts.split.ood_relations)
    out = run_probe(facts, read_relations(root / RELATIONS), root / BASE_DIR, p.probe, root / PROBE,
                    root / DEFAULT_CACHE)
    log.info("probe: %s", out)


def synthesize(p: Params, root: Path) -> None:
    from tasks.facts import read_relations
    from tasks.probe import load_beliefs, load_facts
    from tasks.synthesize import ABSTAIN, split_stats, synthesize as synth, write_splits

    splits = synth(load_facts(root / FACTS), read_relations(root / RELATIONS), load_beliefs(root / PROBE),
                   p.synthesize, p.facts, p.base.seed)
    write_splits(splits, root / DATA_DIR)
    log.info("wrote %s", {k: len(v) for k, v in splits.items()})
    log.info("train mix: %s", split_stats(splits["train"]))
    abstain = sorted({r["relation"] for r in splits["train"] if r["target"] == ABSTAIN})
    if abstain:
        log.info("trained to say %r: %s", ABSTAIN + ".", ", ".join(abstain))


def validate(p: Params, root: Path) -> None:
    from tasks.validate import GateParams, held_out_phrasings, run_validation

    templates, styles = held_out_phrasings(root / RELATIONS, p.facts.split.ood_phrasings,
                                           p.synthesize.assumption_styles)
    gate = GateParams(
        mix=p.synthesize.mix, balance_tolerance=p.validate_.balance_tolerance,
        max_type_ratio=p.synthesize.pairs.max_type_ratio, ood_relations=p.facts.split.ood_relations,
        held_out_templates=templates, held_out_styles=styles, max_length=p.train.max_length,
        max_examples=p.validate_.max_failed_examples,
    )
    s = run_validation(root / DATA_DIR, root / VALIDATION, root / DATA_DOCS, gate, root / BASE_DIR, root / RELATIONS)
    log.info("data quality gate passed: %d expectations", s["n_expectations"])


def train(p: Params, root: Path) -> None:
    from tasks.train import train_sft

    out = train_sft(p.train, p.base.seed, root / BASE_DIR, root / DATA_DIR, root / ADAPTER_DIR, root / TUNED_DIR,
                    root / TRAIN_LIVE)
    log.info("trained: %s", out)


def evaluate(p: Params, root: Path) -> None:
    from tasks.evaluate import evaluate_stage

    from tasks.synthesize import TEST_SPLITS

    evaluate_stage({s: root / DATA_DIR / f"{s}.jsonl" for s in TEST_SPLITS},
                   {"base": root / BASE_DIR, "tuned": root / TUNED_DIR}, p.evaluate.batch_size,
                   p.evaluate.max_new_tokens, root / METRICS, root / PREDICTIONS, root / ADHERENCE_CSV,
                   p.evaluate.precision)


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
