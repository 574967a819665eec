"""Stage probe: ask the base model every training fact, and every held-out-domain fact, closed-book,
and measure how sure it is of every fact it could know.

    params: probe, facts.split        reads: models/base, data/facts.jsonl, data/relations.json
                                       writes: data/probe.jsonl

The answer is the model's own belief: the KAFT target for parametric settings (closed book,
irrelevant context) in training. The certainty is the probability the base model gives the
world's object right after the relation's statement begins ("... The capital of France is" ->
" Paris"), teacher-forced, for every fact but the made-up sources' (test subjects and held-out
relations too): it measures the memory a conflict contradicts, which the probability of the
model's own greedy answer does not where the model is sure of a wrong one. Synthesis stratifies
the conflict settings by it, and the evaluation bins adherence by it. Both are cached in
.kpref_cache/probe by model, prompt and batch, so enabling one more source probes only the new
facts, and a warm cache gives the bytes a cold run gives.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import defaultdict
from pathlib import Path

from tasks.core import prompt
from tasks.core.atomic import write_jsonl
from tasks.core.metrics import first_sentence, matches, normalize, overlaps
from tasks.core.schema import (
    BASE_DIR,
    FACTS,
    OOD_DOMAIN,
    PROBE,
    PROBE_CACHE,
    RELATIONS,
    Fact,
    Relation,
    read_facts,
    read_relations,
    trained_facts,
)
from tasks.params.facts import FactsParams
from tasks.params.probe import ProbeParams
from tasks.params.section import StageParams

log = logging.getLogger(__name__)


class Params(StageParams):
    """The sections of params.yaml this stage reads."""
    probe: ProbeParams
    facts: FactsParams


def run(p: Params, root: Path) -> None:
    sp = p.facts.split
    facts = read_facts(root / FACTS)
    out = run_probe(probed_facts(facts, sp.ood_relations, sp.conflict_sources), read_relations(root / RELATIONS),
                    root / BASE_DIR, p.probe, root / PROBE, root / PROBE_CACHE,
                    certain=[f for f in facts if f.source not in sp.conflict_sources])
    log.info("probe: %s", out)


def probed_facts(facts: list[Fact], ood_relations: tuple[str, ...], made_up: tuple[str, ...] = ()) -> list[Fact]:
    """What the probe asks: every training fact but the made-up sources' (no model knows them), and
    the held-out domain's, whose report reads what the base model knew there."""
    return trained_facts(facts, ood_relations, made_up) + [f for f in facts if f.split == OOD_DOMAIN]


def probe_question(fact: Fact, relations: dict[str, Relation]) -> str:
    return relations[fact.relation].questions[0].format(s=fact.subject)


def probe_batches(relations: list[str], keys: list[str], batch_size: int) -> list[list[int]]:
    """The probe's batches, as indices: one relation's prompts at a time, in key order.

    Batched bf16 generation depends on a prompt's batch-mates, so a fact's answer must not depend
    on which facts happened to be cached: each batch is fixed by the facts of its relation alone.
    A repeated prompt is asked once (its first index)."""
    by_relation: dict[str, dict[str, int]] = defaultdict(dict)
    for i, (rel, k) in enumerate(zip(relations, keys)):
        by_relation[rel].setdefault(k, i)
    out = []
    for rel in sorted(by_relation):
        idx = [by_relation[rel][k] for k in sorted(by_relation[rel])]
        out += [idx[start : start + batch_size] for start in range(0, len(idx), batch_size)]
    return out


def _batch_digest(keys: list[str]) -> str:
    return hashlib.sha256("\0".join(keys).encode()).hexdigest()[:16]


def _read_cache(path: Path, field: str = "belief") -> dict[tuple[str, str], object]:
    out: dict[tuple[str, str], object] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                r = json.loads(line)
                out[r["batch"], r["key"]] = r[field]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line torn by an interrupted run, or of an older cache: probe that batch again
    return out


def _append_cache(path: Path, answers: dict, field: str = "belief") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:  # append-only: a torn line is skipped on read
        for (batch, k), a in sorted(answers.items()):
            fh.write(json.dumps({"batch": batch, "key": k, field: a}) + "\n")


def _cached_batches(relations: list[str], keys: list[str], batch_size: int, cached: dict
                    ) -> tuple[dict[str, object], list[tuple[str, list[int]]]]:
    """The values a cache holds for whole batches (by key), and the batches still to compute
    (their digest and indices)."""
    found: dict[str, object] = {}
    todo: list[tuple[str, list[int]]] = []
    for idx in probe_batches(relations, keys, batch_size):
        digest = _batch_digest([keys[i] for i in idx])
        if all((digest, keys[i]) in cached for i in idx):
            found.update((keys[i], cached[digest, keys[i]]) for i in idx)
        else:
            todo.append((digest, idx))
    return found, todo


def run_probe(facts: list[Fact], relations: dict[str, Relation], model_dir: str | Path, params: ProbeParams,
              out: str | Path, cache_dir: str | Path, certain: list[Fact] | None = None) -> dict:
    """Ask `facts` closed-book and measure the certainty of `certain` (default: `facts`); one
    row a fact of either, the certainty-only ones with no belief."""
    from tasks.runtime.generate import generate
    from tasks.runtime.modeling import load_model, model_digest

    model, tok = load_model(model_dir, precision=params.precision)
    dtype = str(next(model.parameters()).dtype)  # bf16 and fp32 may decode differently: cache each apart
    prompts = [prompt.render(tok, probe_question(f, relations)) for f in facts]
    # the batch's shared opening runs once (generate_answers): a belief cached before that differs in rounding
    keys = [hashlib.sha256(f"{p}\0{params.max_new_tokens}\0{dtype}\0shared-opening".encode()).hexdigest()[:24]
            for p in prompts]
    cache_file = Path(cache_dir) / f"{model_digest(model_dir)}.jsonl"
    belief, todo = _cached_batches([f.relation for f in facts], keys, params.batch_size, _read_cache(cache_file))
    if todo:
        slots = [(digest, i) for digest, idx in todo for i in idx]
        answers = generate(model, tok, [prompts[i] for _, i in slots], params.batch_size, params.max_new_tokens,
                           desc="probing base model", groups=_renumber([idx for _, idx in todo]))
        new = {(digest, keys[i]): a for (digest, i), a in zip(slots, answers)}  # answers come in input order
        _append_cache(cache_file, new)
        belief.update((k, a) for (_, k), a in new.items())
    certain = facts if certain is None else certain
    sure = certainty(model, tok, certain, relations, params.batch_size,
                     Path(cache_dir) / f"{model_digest(model_dir)}.certainty.jsonl")
    rows = [
        {"key": f.key, "question": probe_question(f, relations), "belief": belief[k],
         "answer": belief_answer(belief[k], f, relations[f.relation]),
         "correct": matches(belief[k], [f.object, *f.aliases]), "certainty": sure.get(f.key)}
        for f, k in zip(facts, keys)
    ]
    asked = {f.key for f in facts}
    rows += [{"key": f.key, "question": probe_question(f, relations), "belief": None, "answer": None,
              "correct": None, "certainty": sure[f.key]} for f in certain if f.key not in asked]
    write_jsonl(out, rows)
    probed = {keys[i] for _, idx in todo for i in idx}
    return {"probed": sum(k in probed for k in keys), "cached": sum(k not in probed for k in keys),
            "certainty": len(sure)}


def certainty_prompt(tok, fact: Fact, relations: dict[str, Relation]) -> tuple[str, str]:
    """(prompt, answer): the probe's question with the answer begun as the relation's statement
    up to the object ("The capital of France is"), and the world's object (" Paris")."""
    head = relations[fact.relation].statement.partition("{o}")[0].format(s=fact.subject)
    # "... is Paris": the space before the object goes with the object's first token, as BPE puts it
    space = " " if head.endswith(" ") else ""
    return prompt.render(tok, probe_question(fact, relations)) + head.rstrip(" "), space + fact.object


def certainty(model, tok, facts: list[Fact], relations: dict[str, Relation], batch_size: int,
              cache_file: Path) -> dict[str, float]:
    """fact key -> the base model's probability of the fact's object after its statement's head
    (certainty_prompt), in the probe's fixed batches and cached as its answers are."""
    from tasks.runtime.likelihood import answer_probability

    pairs = [certainty_prompt(tok, f, relations) for f in facts]
    dtype = str(next(model.parameters()).dtype)
    keys = [hashlib.sha256(f"{p}\0{a}\0{dtype}\0certainty".encode()).hexdigest()[:24] for p, a in pairs]
    found, todo = _cached_batches([f.relation for f in facts], keys, batch_size,
                                  _read_cache(cache_file, "certainty"))
    if todo:
        slots = [(digest, i) for digest, idx in todo for i in idx]
        probs = answer_probability(model, tok, [pairs[i][0] for _, i in slots], [pairs[i][1] for _, i in slots],
                                   _renumber([idx for _, idx in todo]), desc="measuring certainty")
        new = {(digest, keys[i]): float(f"{p:.6g}") for (digest, i), p in zip(slots, probs)}
        _append_cache(cache_file, new, "certainty")
        found.update((k, v) for (_, k), v in new.items())
    return {f.key: found[k] for f, k in zip(facts, keys)}


def _renumber(groups: list[list[int]]) -> list[list[int]]:
    """Groups of indices into the concatenation of the groups themselves."""
    out, n = [], 0
    for g in groups:
        out.append(list(range(n, n + len(g))))
        n += len(g)
    return out


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
