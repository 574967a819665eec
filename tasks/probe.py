"""Stages facts + probe: collect facts with their subject split, then ask the base model each
training fact closed-book.

The probe answer is the model's own belief: the KAFT target for parametric settings
(closed book, irrelevant context) when `synthesize.parametric_target` is 'model'. Answers
are cached by model and fact hash, so enabling one more source probes only the new facts.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict
from pathlib import Path

from tasks import prompt
from tasks.atomic import write_jsonl
from tasks.errors import KprefError
from tasks.facts import Relation, collect_facts, write_relations
from tasks.metrics import first_sentence, matches, normalize, overlaps
from tasks.params import FactsParams, ProbeParams
from tasks.schema import Fact, read_jsonl

DEFAULT_CACHE = Path(".kpref_cache") / "probe"


def write_facts(params: FactsParams, seed: int, out: str | Path = "data/facts.jsonl",
                relations_out: str | Path = "data/relations.json") -> list[Fact]:
    facts, relations = collect_facts(params, seed)
    if not facts:
        raise KprefError("facts.sources: no facts (every source disabled or empty)")
    write_relations(relations, relations_out)
    write_jsonl(out, (asdict(f) for f in facts))
    return facts


def load_facts(path: str | Path = "data/facts.jsonl") -> list[Fact]:
    return [Fact(**{**r, "aliases": tuple(r["aliases"])}) for r in read_jsonl(path)]


def probe_question(fact: Fact, relations: dict[str, Relation]) -> str:
    return relations[fact.relation].questions[0].format(s=fact.subject)


def facts_to_probe(facts: list[Fact], ood_relations: tuple[str, ...]) -> list[Fact]:
    """The facts the model will be trained on: train/val subjects, trained relations."""
    return [f for f in facts if f.split in ("train", "val") and f.relation not in ood_relations]


def model_digest(model_dir: str | Path) -> str:
    h = hashlib.sha256()
    for f in sorted(Path(model_dir).glob("*.safetensors")) + [Path(model_dir) / "config.json"]:
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 24), b""):
                h.update(block)
    return h.hexdigest()[:20]


def _read_cache(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                r = json.loads(line)
                out[r["key"]] = r["belief"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line torn by an interrupted run: probe that fact again
    return out


def run_probe(facts: list[Fact], relations: dict[str, Relation], model_dir: str | Path, params: ProbeParams,
              out: str | Path = "data/probe.jsonl", cache_dir: str | Path = DEFAULT_CACHE) -> dict:
    from tasks.generate import generate
    from tasks.modeling import load_model

    model, tok = load_model(model_dir, precision=params.precision)
    dtype = str(next(model.parameters()).dtype)  # bf16 and fp32 may decode differently: cache each apart
    prompts = [prompt.render(tok, probe_question(f, relations)) for f in facts]
    keys = [hashlib.sha256(f"{p}\0{params.max_new_tokens}\0{dtype}".encode()).hexdigest()[:24] for p in prompts]
    cache_file = Path(cache_dir) / f"{model_digest(model_dir)}.jsonl"
    cached = _read_cache(cache_file)
    todo = sorted({(k, p) for k, p in zip(keys, prompts) if k not in cached})
    if todo:
        answers = generate(model, tok, [p for _, p in todo], params.batch_size, params.max_new_tokens,
                           desc="probing base model")
        new = {k: a for (k, _), a in zip(todo, answers)}
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        with open(cache_file, "a", encoding="utf-8") as fh:  # append-only: a torn line is skipped on read
            for k, a in sorted(new.items()):
                fh.write(json.dumps({"key": k, "belief": a}) + "\n")
        cached.update(new)
    rows = (
        {"key": f.key, "question": probe_question(f, relations), "belief": cached[k],
         "answer": belief_answer(cached[k], f, relations[f.relation]),
         "correct": matches(cached[k], [f.object, *f.aliases])}
        for f, k in zip(facts, keys)
    )
    write_jsonl(out, rows)
    return {"probed": len(todo), "cached": len(facts) - len(todo)}


_MAX_ANSWER_WORDS = 5


def _statement_pattern(relation: Relation, subject: str) -> re.Pattern:
    """The relation's statement as a regex: subject fixed, "the" optional, the object captured."""
    head = relation.head_pattern(rf"(?:the\s+)?{re.escape(subject)}")
    head = re.sub(r"the\\ $|the $", r"(?:the\\s+)?", head)
    return re.compile(rf"\s*{head}(?P<o>[^.,;:()\n]+?)\s*(?:[.,;:(]|$)", re.IGNORECASE)


def belief_answer(belief: str, fact: Fact, relation: Relation) -> str | None:
    """The answer a closed-book text commits to, or None when it commits to none.

    The world's answer when the text names it (or an alias); else the object slot of the
    relation's own statement read from the first sentence ("The capital of X is <o>."), the
    shape the tuned model answers in. A text that states no such slot, or fills it with the
    subject itself or with more than a short phrase, is rambling: no belief to train on.
    """
    if matches(belief, [fact.object, *fact.aliases]):
        return fact.object
    m = _statement_pattern(relation, fact.subject).match(first_sentence(belief))
    if not m:
        return None
    answer = m.group("o").strip(" *\"'`")
    # "A" or "the" is no answer: nothing is left of it once normalised for matching
    if not normalize(answer) or len(answer.split()) > _MAX_ANSWER_WORDS or overlaps(answer, fact.subject):
        return None
    return answer


def load_beliefs(path: str | Path) -> dict[str, str]:
    """Fact key -> the answer the base model committed to (facts it gave no clean answer to are left out)."""
    return {r["key"]: r["answer"] for r in read_jsonl(path) if r.get("answer")}

