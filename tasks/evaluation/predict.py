"""A model's answers to evaluation items, each row with what the metrics need: match, source
followed, confidence gain, the base model's certainty of what memory says (tasks/evaluation/prior.py)
and, beside an irrelevant passage, the closed-book answer.

`predict` is the one way an item is answered: the evaluate stages (in shards, tasks/evaluation/shards.py),
`kpref evaluate` and the benchmark scripts all call it. `explain_answer` is `kpref answer --explain`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from tasks.core import prompt
from tasks.core.metrics import (
    answer_residue,
    exact_match,
    followed_source,
    matches,
    normalize,
    overlaps,
    token_f1,
)
from tasks.core.schema import EvalItem
from tasks.evaluation.prior import is_conflict
from tasks.runtime.generate import first_token_entropy, generate_answers


def _closed_book_prompts(tok, items: Sequence[EvalItem]) -> dict[str, str]:
    return {it.id: prompt.render(tok, it.question) for it in items if it.setting == "ctx_irrelevant"}


def predict(model, tok, items: Sequence[EvalItem], batch_size: int = 16, max_new_tokens: int = 24,
            desc: str = "evaluating", prior: bool = False) -> list[dict]:
    """One prediction row per item, in order: the answer, whether it matches, the source it
    followed, its confidence gain, the base model's certainty the item carries and, beside an
    irrelevant passage, the closed-book answer. `prior`: a conflict item that carries no
    certainty gets this model's own, the mean probability of its closed-book answer's tokens
    (this model is the base, or stands in for it)."""
    prompts = [prompt.render(tok, it.question, it.contexts, it.instruction) for it in items]
    # Robustness compares each irrelevant-context answer with the same model's closed-book
    # answer to the same question; generate each distinct prompt once.
    cb = _closed_book_prompts(tok, items)
    unique = list(dict.fromkeys([*prompts, *cb.values()]))
    # questions asked beside the same passages or instruction (a benchmark case's edits) share
    # the prompt's opening: generation runs it once for them
    opening = {p: (it.instruction, tuple(it.contexts)) for it, p in zip(items, prompts)}
    keys = [opening.get(p, (None, ())) for p in unique]
    bare = {it.id: prompt.render(tok, it.question) for it in items if it.contexts or it.instruction}
    # a conflict item without a certainty is measured from this model's closed-book answer to it,
    # which may be among the prompts asked anyway (another item asks that question closed-book)
    unsure = {bare[it.id] for it in items if prior and it.base_certainty is None and it.id in bare
              and is_conflict(it.setting, it.expected_source)}
    answers = dict(zip(unique, generate_answers(model, tok, unique, batch_size, max_new_tokens, desc=desc,
                                                prefix_keys=keys, probability=not unsure.isdisjoint(unique))))
    bare_entropy = _bare_answers(model, tok, answers, list(dict.fromkeys(bare.values())), unsure, batch_size,
                                 max_new_tokens, desc)

    preds = []
    for it, p in zip(items, prompts):
        pred = answers[p].text
        row = {
            "id": it.id,
            "setting": it.setting,
            "expected_source": it.expected_source,
            "prediction": pred,
            "expected": list(it.answers),
            "correct": matches(pred, it.answers),
            "em": exact_match(pred, it.answers),
            "f1": round(token_f1(pred, it.answers), 4),
        }
        if it.group:
            row["group"] = it.group
        # what was asked, so a failure can be read in full without the data files
        row.update(question=it.question, instruction=it.instruction, contexts=list(it.contexts))
        if it.id in bare:
            row["confidence_gain"] = round(bare_entropy[bare[it.id]] - answers[p].entropy, 4)
        if it.source_answers:
            row["followed_source"] = followed_source(pred, it.source_answers)
        if it.base_certainty is not None:
            row["base_certainty"] = it.base_certainty
        elif it.id in bare and bare[it.id] in unsure:
            row["base_certainty"] = answers[bare[it.id]].probability
        if it.id in cb:
            closed = answers[cb[it.id]].text
            row["closed_book_prediction"] = closed
            row["closed_book_correct"] = matches(closed, it.answers)
            row["robust"] = same_answer(pred, closed, it)
        preds.append(row)
    return preds


def _bare_answers(model, tok, answers: dict, bare: list[str], unsure: set[str], batch_size: int,
                  max_new_tokens: int, desc: str) -> dict[str, float]:
    """CK-PLUG's confidence gain needs each question's first-token entropy with nothing beside it:
    {bare prompt: entropy}, one forward pass for the bare prompts not generated already, those in
    `unsure` generated whole into `answers` (a certainty is measured from the whole answer)."""
    entropy = {q: a.entropy for q, a in answers.items()}
    todo = [q for q in bare if q not in answers]
    closed = [q for q in todo if q in unsure]
    if closed:
        answers.update(zip(closed, generate_answers(model, tok, closed, batch_size, max_new_tokens,
                                                    desc=f"{desc} (closed-book)", prefix_keys=[None] * len(closed),
                                                    probability=True)))
        entropy.update((q, answers[q].entropy) for q in closed)
    todo = [q for q in todo if q not in unsure]
    entropy.update(zip(todo, first_token_entropy(model, tok, todo, batch_size, desc=f"{desc} (bare)",
                                                 prefix_keys=[None] * len(todo))))
    return entropy


@dataclass
class Explanation:
    answer: str
    followed: str  # instruction | context | parametric | none, by the metrics' rule (followed_source)
    by_source: dict[str, str]  # what the model answers given only that source (parametric: nothing)
    confidence_gain: float | None  # first-token entropy bare minus with everything given (nats)


def explain_answer(model, tok, question: str, contexts: Sequence[str] = (), instruction: str | None = None,
                   max_new_tokens: int = 24) -> Explanation:
    """The answer, and which source it followed: the model is asked again with only the
    instruction, only the contexts and nothing, and each of those answers (the words it adds to
    the question) stands for what that source says; the metrics' rule then credits the highest
    source the answer agrees with."""
    variants = {"full": prompt.render(tok, question, contexts, instruction),
                "parametric": prompt.render(tok, question)}
    if instruction:
        variants["instruction"] = prompt.render(tok, question, (), instruction)
    if contexts:
        variants["context"] = prompt.render(tok, question, contexts)
    unique = list(dict.fromkeys(variants.values()))
    answers = dict(zip(unique, generate_answers(model, tok, unique, len(unique), max_new_tokens, desc="explaining")))
    full = answers[variants["full"]]
    by_source = {k: answers[v].text for k, v in variants.items() if k != "full"}
    said = {k: answer_residue(v, question) or v for k, v in by_source.items()}
    gain = round(answers[variants["parametric"]].entropy - full.entropy, 4) if contexts or instruction else None
    return Explanation(full.text, followed_source(full.text, said), by_source, gain)


def same_answer(pred: str, closed_book: str, it: EvalItem) -> bool:
    """Does the irrelevant-context answer say what the closed-book answer says?

    Answers are compared by the candidate entities they name (the world's answer, under any of
    its names: "Kazakhs" and "Kazakh" are one answer, and the distractor's). When neither names
    one, by what each adds to the question: its first sentence less the question's own words
    ("The capital of Nepal is Kathi." -> "kathi"), one containing the other as whole words, as
    answer matching does.
    """
    cands = [[a] for a in (it.source_answers or {}).values() if a] + [list(it.answers)]
    named = lambda text: {normalize(names[0]) for names in cands if names and matches(text, names)}  # noqa: E731
    a, b = named(pred), named(closed_book)
    if a or b:
        return a == b
    ra, rb = answer_residue(pred, it.question), answer_residue(closed_book, it.question)
    if ra and rb:
        return overlaps(ra, rb)
    return normalize(pred) == normalize(closed_book)


