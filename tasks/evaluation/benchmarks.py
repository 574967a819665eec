"""Public knowledge-conflict benchmarks, read as their authors publish them, as evaluation items.

- MQuAKE (a JSON list of cases): a case's edits are given once as the user's instruction and once
  as retrieved passages; its three multi-hop questions share a `group` (the authors' rule: a case
  is solved when any of them is), each edited fact is asked alone with the same edits, and the
  original chain's hops no edit touches are asked closed-book (retention).
- IfQA (a JSON list of questions): the question's if-clause becomes the instruction; asked with
  and without its Wikipedia passages, which state the fact the premise overrides.
- MRQA 2019 (JSON Lines, gzipped or not): the original passage; a counterfactual one, every answer
  span replaced by another answer of the same coarse type from the same file (Longpre et al.'s
  corpus substitution); an irrelevant one, another question's passage.

Each becomes `EvalItem`s, so benchmarks, user sets and synthetic splits share one evaluator. A
malformed record raises a `KprefError` naming file, record and field. Deterministic: the same
file and cap give the same items (MRQA's substitutes are drawn with a per-question seed).
"""
from __future__ import annotations

import logging
import random
import re
from pathlib import Path
from typing import Callable

from tasks.core.metrics import normalize, overlaps
from tasks.core.schema import (
    ASSUMPTION_STYLES,
    EvalItem,
    KprefError,
    iter_jsonl,
    read_json_list,
)
from tasks.params.evaluate import BenchmarkFile

log = logging.getLogger(__name__)


def load_benchmark(fmt: str, path: str | Path, max_items: int | None = None) -> list[EvalItem]:
    """The first `max_items` cases (MQuAKE) or questions (IfQA, MRQA) of a benchmark file."""
    if fmt not in LOADERS:
        raise KprefError(f"unknown benchmark format {fmt!r}: one of {', '.join(LOADERS)}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: benchmark file not found")
    items = LOADERS[fmt](path, max_items)
    if not items:
        raise KprefError(f"{path}: no {fmt} records to evaluate")
    return items


# -- field checks: every problem names file, record and field ----------------------------------
def _field(rec: dict, name: str, kind: type | tuple, where: str, optional: bool = False):
    if name not in rec:
        if optional:
            return None
        raise KprefError(f"{where}: missing field '{name}'")
    value = rec[name]
    if not isinstance(value, kind):
        want = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise KprefError(f"{where}: field '{name}' must be {want}, got {type(value).__name__}")
    if isinstance(value, str) and not value.strip():
        raise KprefError(f"{where}: field '{name}' is empty")
    return value


def _strings(rec: dict, name: str, where: str, optional: bool = False, nonempty: bool = True) -> list[str]:
    value = _field(rec, name, list, where, optional)
    if value is None:
        return []
    if (nonempty and not value) or not all(isinstance(v, str) for v in value):
        raise KprefError(f"{where}: field '{name}' must be a {'non-empty ' if nonempty else ''}list of strings")
    return [v for v in value if v.strip()]


def _record(rec, where: str) -> dict:
    if not isinstance(rec, dict):
        raise KprefError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    return rec


# -- MQuAKE ------------------------------------------------------------------------------------
def _edit_statement(rw: dict, where: str) -> tuple[str, str]:
    """A requested rewrite as a sentence ("Hey Jude was performed by Madonna.") and its subject."""
    prompt = _field(rw, "prompt", str, where)
    subject = _field(rw, "subject", str, where).strip()
    if "{}" not in prompt:
        raise KprefError(f"{where}: field 'prompt' lacks the subject placeholder {{}}")
    return f"{prompt.replace('{}', subject).strip()} {_target(rw, 'target_new', where)}.", subject


def _target(rw: dict, name: str, where: str) -> str:
    t = _field(rw, name, dict, where)
    if not isinstance(t.get("str"), str) or not t["str"].strip():
        raise KprefError(f"{where}: field '{name}' needs a non-empty 'str'")
    return t["str"].strip()


def _assume(statement: str, subject: str) -> str:
    """As the synthesized instructions state an assumption (Relation.assume): the first style."""
    clause = statement.rstrip(".")
    lowered = clause if clause.startswith(subject) else clause[0].lower() + clause[1:]
    return ASSUMPTION_STYLES[0].format(clause=lowered, Clause=clause)


def load_mquake(path: Path, max_items: int | None) -> list[EvalItem]:
    items: list[EvalItem] = []
    asked: set[str] = set()  # closed-book hops shared by several cases are asked once
    for i, case in enumerate(read_json_list(path, "MQuAKE cases")[:max_items]):
        where = f"{path}: case {i}"
        case = _record(case, where)
        cid = str(case.get("case_id", i))
        where = f"{path}: case {i} (case_id {cid})"
        rewrites = _field(case, "requested_rewrite", list, where)
        if not rewrites:
            raise KprefError(f"{where}: field 'requested_rewrite' is empty")
        new_hops = {}
        for j, hop in enumerate(_field(case, "new_single_hops", list, where, optional=True) or []):
            hop = _record(hop, f"{where}: new_single_hops[{j}]")
            new_hops[normalize(_field(hop, "answer", str, f"{where}: new_single_hops[{j}]"))] = _strings(
                hop, "answer_alias", f"{where}: new_single_hops[{j}]", optional=True, nonempty=False)
        edits = []
        for j, rw in enumerate(rewrites):
            at = f"{where}: requested_rewrite[{j}]"
            rw = _record(rw, at)
            statement, subject = _edit_statement(rw, at)
            new, true = _target(rw, "target_new", at), _target(rw, "target_true", at)
            question = _field(rw, "question", str, at)
            edits.append((statement, subject, question, new, true))
        instruction = " ".join(_assume(st, subj) for st, subj, *_ in edits)
        contexts = [st for st, *_ in edits]
        new_answers = [_field(case, "new_answer", str, where),
                       *_strings(case, "new_answer_alias", where, nonempty=False)]
        old = _field(case, "answer", str, where)
        for carrier, setting in (("instruction", "multi_hop_instr"), ("context", "multi_hop_ctx")):
            given = dict(instruction=instruction, contexts=[]) if carrier == "instruction" else \
                dict(instruction=None, contexts=contexts)
            for k, q in enumerate(_strings(case, "questions", where)):
                items.append(EvalItem(f"mquake/{cid}/{setting}/{k}", q, answers=new_answers, expected_source=carrier,
                                      setting=setting, group=f"{cid}/{setting}",
                                      source_answers={carrier: new_answers[0], "world": old}, **given))
            edit_setting = "instr_only" if carrier == "instruction" else "ctx_counterfactual"
            for j, (_, _, question, new, true) in enumerate(edits):
                items.append(EvalItem(f"mquake/{cid}/{edit_setting}/{j}", question, answers=[new, *new_hops.get(
                    normalize(new), [])], expected_source=carrier, setting=edit_setting,
                    source_answers={carrier: new, "world": true}, **given))
        edited = {normalize(q) for *_, q, _, _ in edits}
        for j, hop in enumerate(_field(case, "single_hops", list, where)):
            at = f"{where}: single_hops[{j}]"
            hop = _record(hop, at)
            q = _field(hop, "question", str, at)
            if normalize(q) in edited or normalize(q) in asked:
                continue
            asked.add(normalize(q))
            answer = _field(hop, "answer", str, at)
            items.append(EvalItem(f"mquake/{cid}/closed_book/{j}", q, None, [],
                                  [answer, *_strings(hop, "answer_alias", at, optional=True, nonempty=False)],
                                  "parametric", "closed_book", source_answers={"parametric": answer, "world": answer}))
    return items


# -- IfQA --------------------------------------------------------------------------------------
_ASKS = r"(?:(?:in|on|at|to|for|from|by|with|of|during|after|before)\s+)?" \
        r"(?:what|who|whom|whose|which|how|when|where|why|would|will|could|can|is|are|was|were|do|does|did)\b"
_IF_FIRST = re.compile(rf"^\s*if\s+(?P<premise>.+?),\s*(?P<question>{_ASKS}.*)$", re.IGNORECASE | re.DOTALL)
_IF_LAST = re.compile(r"^\s*(?P<question>.+?)\s*,?\s+if\s+(?P<premise>[^?]+)\?\s*$", re.IGNORECASE | re.DOTALL)


def split_premise(question: str) -> tuple[str | None, str]:
    """An IfQA question as (its if-clause as an assumption, the question it asks).

    "If Soros had not shorted the baht, what would the rate be?" -> ("Suppose Soros had not
    shorted the baht.", "What would the rate be?"); the question's first comma followed by a
    question word ends the premise. A question with no such clause is kept whole.
    """
    m = _IF_FIRST.match(question) or _IF_LAST.match(question)
    if not m:
        return None, question
    premise, asked = m.group("premise").strip().rstrip(","), m.group("question").strip()
    if not asked.endswith("?"):
        asked += "?"
    return f"Suppose {premise}.", asked[0].upper() + asked[1:]


def load_ifqa(path: Path, max_items: int | None) -> list[EvalItem]:
    items: list[EvalItem] = []
    for i, rec in enumerate(read_json_list(path, "IfQA questions")[:max_items]):
        where = f"{path}: record {i}"
        rec = _record(rec, where)
        idx = _field(rec, "idx", (int, str), where)
        where = f"{path}: record {i} (idx {idx})"
        answers = _strings(rec, "answers", where)
        passages = _strings(rec, "context", where, nonempty=False)
        instruction, question = split_premise(_field(rec, "question", str, where))
        src = {"instruction": answers[0]}
        items.append(EvalItem(f"ifqa/{idx}/instr_vs_ctx", question, instruction, passages, answers, "instruction",
                              "instr_vs_ctx", source_answers=src))
        items.append(EvalItem(f"ifqa/{idx}/instr_only", question, instruction, [], answers, "instruction",
                              "instr_only", source_answers=src))
    return items


# -- MRQA --------------------------------------------------------------------------------------
_MARKUP = re.compile(r"\s*\[(?:PAR|DOC|SEP)\]\s*")


def _mrqa_records(path: Path) -> list[tuple[int, dict]]:
    """(line number, passage record) for every line but the header."""
    return [(n, rec) for n, rec in iter_jsonl(path) if "header" not in rec]


def answer_type(text: str) -> str:
    """A coarse entity type, for drawing a substitute answer of the same kind."""
    t = text.strip()
    if re.fullmatch(r"1\d{3}|20\d{2}", t):
        return "year"
    if re.search(r"\d", t):
        return "number"
    words = t.split()
    if words and all(w[:1].isupper() for w in words if w[:1].isalpha()):
        return "name"
    return "phrase"


def _substituted(context: str, spans: list[tuple[int, int]], substitute: str) -> str:
    """The context with each inclusive [start, end] span replaced, from the last one back."""
    for start, end in sorted(set(spans), reverse=True):
        context = context[:start] + substitute + context[end + 1:]
    return context


def _clean(context: str) -> str:
    return _MARKUP.sub("\n", context).replace("[TLE]", "").strip()


def load_mrqa(path: Path, max_items: int | None) -> list[EvalItem]:
    questions = []  # (qid, question, answers, detected spans, context, record line)
    for n, rec in _mrqa_records(path):
        where = f"{path}:{n}"
        context = _field(rec, "context", str, where)
        for k, qa in enumerate(_field(rec, "qas", list, where)):
            at = f"{where}: qas[{k}]"
            qa = _record(qa, at)
            qid = str(_field(qa, "qid", (str, int), at))
            detected = _field(qa, "detected_answers", list, at)
            texts, spans = [], []
            for d, ans in enumerate(detected):
                ans = _record(ans, f"{at}: detected_answers[{d}]")
                texts.append(_field(ans, "text", str, f"{at}: detected_answers[{d}]"))
                for span in _field(ans, "char_spans", list, f"{at}: detected_answers[{d}]"):
                    if not (isinstance(span, list) and len(span) == 2 and all(isinstance(x, int) for x in span)
                            and 0 <= span[0] <= span[1] < len(context)):
                        raise KprefError(f"{at}: detected_answers[{d}]: field 'char_spans' has {span!r}, not an "
                                         f"inclusive [start, end] inside the context")
                    spans.append(tuple(span))
            answers = list(dict.fromkeys(_strings(qa, "answers", at, optional=True, nonempty=False) + texts))
            if answers and spans:
                questions.append((qid, _field(qa, "question", str, at), answers, spans, context, n))
    pool: dict[str, list[str]] = {}
    for _, _, answers, *_ in questions:
        pool.setdefault(answer_type(answers[0]), []).append(answers[0])
    pool = {t: sorted(set(v)) for t, v in pool.items()}
    contexts = {n: c for *_, c, n in questions}  # one passage per record line
    lines = sorted(contexts)
    items: list[EvalItem] = []
    for qid, question, answers, spans, context, n in questions[:max_items]:
        rng = random.Random(f"mrqa:{qid}")
        original = answers[0]
        items.append(EvalItem(f"mrqa/{qid}/ctx_support", question, None, [_clean(context)], answers, "context",
                              "ctx_support", source_answers={"context": original, "world": original}))
        others = [a for a in pool[answer_type(original)] if not any(overlaps(a, b) for b in answers)]
        if others:  # no answer of its type to swap in: no counterfactual, rather than a faked one
            sub = rng.choice(others)
            items.append(EvalItem(f"mrqa/{qid}/ctx_counterfactual", question, None,
                                  [_clean(_substituted(context, spans, sub))], [sub], "context", "ctx_counterfactual",
                                  source_answers={"context": sub, "world": original}))
        if len(lines) > 1:
            other = lines[rng.randrange(len(lines) - 1)]
            other = lines[-1] if other == n else other  # any record but this question's own
            items.append(EvalItem(f"mrqa/{qid}/ctx_irrelevant", question, None, [_clean(contexts[other])], answers,
                                  "parametric",
                                  "ctx_irrelevant", source_answers={"parametric": original, "world": original}))
    return items


LOADERS: dict[str, Callable[[Path, int | None], list[EvalItem]]] = {
    "mquake": load_mquake, "ifqa": load_ifqa, "mrqa": load_mrqa}


def read_benchmarks(files: dict[str, BenchmarkFile], root: Path) -> tuple[dict[str, list[EvalItem]], dict[str, str]]:
    """Every benchmark params.yaml lists, read and checked before any model loads: ({name: items},
    {name: why it was skipped}). An absent file or a malformed record skips that benchmark, said
    so in the log and in metrics.json; the rest of the evaluation still runs."""
    sets, skipped = {}, {}
    for name, f in files.items():
        try:
            sets[name] = load_benchmark(f.format, root / f.path, f.max_items)
            log.info("benchmark %s: %d questions from %s", name, len(sets[name]), f.path)
        except FileNotFoundError:
            skipped[name] = f"file not found: {f.path}"
        except KprefError as e:
            skipped[name] = f"not read: {e}"
        if name in skipped:
            log.warning("benchmark %s skipped: %s", name, skipped[name])
    return sets, skipped
