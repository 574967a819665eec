"""Long chains of edits for multi-hop training (`synthesize.long_chains`).

MQuAKE-hard asks through four edits, each edit's object the next one's subject: "What is the
capital of the country of citizenship of the spouse of the author of X?". kpref's multi-hop
examples compose two hops (city -> country -> X), and the tuned model answered MQuAKE's longer
chains with the first edit restated ("The author of X is Y."). A chain here walks the made-up
world (a book or company -> a person -> ... -> the person's country) to a real country and one
of its composed relations, every hop stated by the prompt: the answer comes only from reading
the whole chain. The made-up hops need the fictional source; the country is a training subject.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from tasks.core.schema import KprefError

# each hop as a noun phrase around the previous one: "the spouse of " + "the author of X"
PHRASES = {
    "author": "the author of {s}", "founder": "the founder of {s}", "ceo": "the CEO of {s}",
    "spouse": "the spouse of {s}", "employer": "the employer of {s}",
    "citizenship": "the country of citizenship of {s}",
    "capital": "the capital of {s}", "continent": "the continent of {s}", "currency": "the currency of {s}",
    "language": "the main language of {s}",
}
STARTS = ("author", "founder", "ceo")  # a made-up book or company -> a person
MIDDLES = ((), ("spouse",), ("employer", "founder"), ("employer", "ceo"))  # person -> ... -> person
MADE_UP_HOPS = (*STARTS, "spouse", "employer")
NEEDED = (*MADE_UP_HOPS, "citizenship")


@dataclass(frozen=True)
class Chain:
    subject: str  # the made-up book or company the question starts from
    hops: tuple[tuple[str, str, str], ...]  # (relation, subject, object), up to the person's country
    country: str  # the bridge: the last hop's subject
    last: str  # the country's relation asked
    template: str  # the question, {s} for `subject`


def check_chain_relations(relations: set[str]) -> None:
    """Before any example is drawn: chains walk the made-up relations."""
    missing = [r for r in NEEDED if r not in relations]
    if missing:
        raise KprefError(f"synthesize.long_chains needs the made-up relations {', '.join(missing)}: enable "
                         "facts.sources.fictional with them, or set synthesize.long_chains to 0")


def walk(rng: random.Random, starts: dict[str, list[str]], objects: dict[str, list[str]],
         countries: dict[str, list[str]]) -> Chain:
    """A chain of 3 to 5 hops: a start, 0-2 middle hops, the person's country, then one of its
    relations. `starts`: the subjects each start relation may begin from; `objects`: each made-up
    relation's objects; `countries`: the countries each composed relation may be asked of."""
    starts = {r: v for r, v in starts.items() if v}
    countries = {r: v for r, v in countries.items() if v and r in PHRASES}
    if not starts or not countries:
        raise KprefError("synthesize.long_chains: this split has no made-up book or company to start a chain "
                         "from, or no country to end it in")
    start, middle = rng.choice(sorted(starts)), rng.choice(MIDDLES)
    last = rng.choice(sorted(countries))
    subject = rng.choice(starts[start])
    hops, at, named = [], subject, {subject}
    for r in (start, *middle):
        o = rng.choice([o for o in objects[r] if o not in named])  # no one is their own spouse
        hops.append((r, at, o))
        at = o
        named.add(o)
    country = rng.choice(countries[last])
    hops.append(("citizenship", at, country))
    phrase = "{s}"
    for r in (start, *middle, "citizenship", last):
        phrase = PHRASES[r].format(s=phrase)
    return Chain(subject, tuple(hops), country, last, f"What is {phrase}?")
