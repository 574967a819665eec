"""Stage facts: real facts from every enabled source, each subject assigned to train, val or test
(or, for the held-out domains' sources, to test_ood_domain).

    params: base.seed, facts          writes: data/facts.jsonl, data/relations.json

Sources (`tasks/sources/registry.py`) yield facts; this stage keeps one fact per relation and subject,
drops facts no question can be posed on, and splits by subject, so a test subject never
reaches training.
"""
from __future__ import annotations

import logging
import random
from dataclasses import asdict, replace
from pathlib import Path

from tasks.core.atomic import write_json, write_jsonl
from tasks.core.metrics import normalize
from tasks.core.schema import FACTS, OOD_DOMAIN, RELATIONS, Fact, KprefError, Relation
from tasks.params.base import BaseParams
from tasks.params.facts import FactsParams
from tasks.params.section import StageParams
from tasks.sources.registry import enabled_sources
from tasks.sources.relations import COMMON_WORDS

log = logging.getLogger(__name__)


class Params(StageParams):
    """The sections of params.yaml this stage reads."""
    base: BaseParams
    facts: FactsParams


def run(p: Params, root: Path) -> None:
    n = len(write_facts(p.facts, p.base.seed, root / FACTS, root / RELATIONS))
    log.info("wrote %d facts", n)


def split_subjects(subjects: list[str], test: float, val: float, seed: int) -> dict[str, str]:
    """subject -> train / val / test, a seeded shuffle of the sorted subjects."""
    subjects = sorted(set(subjects))
    random.Random(f"{seed}:subjects").shuffle(subjects)
    n_test = max(1, round(len(subjects) * test))
    n_val = round(len(subjects) * val)
    if len(subjects) - n_test - n_val < 1:
        raise KprefError(f"facts: only {len(subjects)} subjects; too few for train/val/test splits")
    return {s: ("test" if i < n_test else "val" if i < n_test + n_val else "train") for i, s in enumerate(subjects)}


def _askable(f: Fact) -> bool:
    # "What is the capital of Singapore?" names its own answer: no conflict can be posed on it;
    # an object that normalises to nothing (".an": punctuation and an article) no answer can match
    obj = normalize(f.object)
    return bool(obj) and obj not in COMMON_WORDS and f" {obj} " not in f" {normalize(f.subject)} "


def collect_facts(params: FactsParams, seed: int) -> tuple[list[Fact], dict[str, Relation]]:
    """Facts of every enabled source (one per relation and subject) with their subject split, and the relations."""
    facts: dict[str, Fact] = {}
    relations: dict[str, Relation] = {}
    for src in enabled_sources(params.sources, seed):
        relations.update(src.relations())
        for f in src.facts():
            if _askable(f):
                facts.setdefault(f.key, f)
    unknown = sorted(set(params.split.ood_relations) - set(relations))
    if unknown:
        raise KprefError(f"facts.split.ood_relations: {unknown} is not a relation of any enabled source "
                         f"({sorted(relations)})")
    held_out = set(params.split.ood_domains)
    trained_only = {*params.split.replay_sources, *params.split.conflict_sources}
    apart = held_out | trained_only  # sources outside the subject split
    core = [f for f in facts.values() if f.source not in apart]
    split = split_subjects([f.subject for f in core], params.split.test_subjects, params.split.val_subjects, seed)
    out = [replace(f, split=split[f.subject]) for f in core]
    # a held-out domain's subject that a tested source also names (Georgia the state and the
    # country) would carry the domain into training, a replayed or made-up one a test subject: both left out
    taken = {normalize(f.subject) for f in core}
    for f in facts.values():
        if f.source in apart and normalize(f.subject) not in taken:
            out.append(replace(f, split=OOD_DOMAIN if f.source in held_out else "train"))
    return sorted(out, key=lambda f: (f.relation, f.subject)), relations


def write_facts(params: FactsParams, seed: int, out: str | Path, relations_out: str | Path) -> list[Fact]:
    """Collect the facts and write them with the relations they use (read back by `schema.read_facts`
    and `schema.read_relations`)."""
    facts, relations = collect_facts(params, seed)
    if not facts:
        raise KprefError("facts.sources: no facts (every source disabled or empty)")
    write_json(relations_out, {name: r.to_dict() for name, r in sorted(relations.items())})
    write_jsonl(out, (asdict(f) for f in facts))
    return facts
