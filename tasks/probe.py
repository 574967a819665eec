"""Stage facts + probe: collect facts, then ask the base model each one closed-book.

The probe answer is the model's own belief: the KAFT target for parametric settings
(closed book, irrelevant context) when `synthesize.parametric_target` is 'model'.
"""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from tasks import prompt
from tasks.atomic import write_jsonl
from tasks.facts import RELATIONS, collect_facts
from tasks.metrics import matches
from tasks.params import FactsParams, ProbeParams
from tasks.schema import Fact, read_jsonl


def write_facts(params: FactsParams, out: str | Path = "data/facts.jsonl") -> list[Fact]:
    facts = collect_facts(params)
    if not facts:
        from tasks.errors import KprefError

        raise KprefError("facts.sources: no facts (every source disabled or empty)")
    write_jsonl(out, (asdict(f) for f in facts))
    return facts


def load_facts(path: str | Path = "data/facts.jsonl") -> list[Fact]:
    return [Fact(**{**r, "aliases": tuple(r["aliases"])}) for r in read_jsonl(path)]


def probe_question(fact: Fact) -> str:
    return RELATIONS[fact.relation].questions[0].format(s=fact.subject)


def run_probe(facts: list[Fact], model_dir: str | Path, params: ProbeParams, out: str | Path = "data/probe.jsonl") -> Path:
    from tasks.generate import generate
    from tasks.modeling import load_model

    model, tok = load_model(model_dir)
    prompts = [prompt.render(tok, probe_question(f)) for f in facts]
    answers = generate(model, tok, prompts, params.batch_size, params.max_new_tokens, desc="probing base model")
    rows = (
        {"key": f.key, "question": probe_question(f), "belief": a, "correct": matches(a, [f.object, *f.aliases])}
        for f, a in zip(facts, answers)
    )
    return write_jsonl(out, rows)
