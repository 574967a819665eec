"""Fact sources of codes, numbers and symbols beyond the trained geography: a language's ISO 639-1
code, a currency's ISO 4217 code, an HTTP status code, a unit's symbol.

A replayed source (`facts.split.replay_sources`) is trained only in the memory settings, on
the base model's own answers, so answering from memory with a short code or symbol is not
learned on geography alone. By default languages and currencies are replayed; HTTP status
codes and units are off: replaying them too left MQuAKE's closed-book answers on its unedited
facts more than 3 points under the base on two seeds, and multi-hop under 0.90 on one
(docs/decisions.md).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Iterator

from tasks.core.schema import Fact
from tasks.sources.relations import BuiltinRelationsSource, clean


@dataclass
class LanguagesSource(BuiltinRelationsSource):
    """pycountry: the languages that have a two-letter ISO 639-1 code."""

    relation_names: tuple[str, ...] = ("language_code",)
    name: str = "languages"

    def facts(self) -> Iterator[Fact]:
        import pycountry

        for lang in sorted(pycountry.languages, key=lambda x: x.alpha_3):
            code = getattr(lang, "alpha_2", None)
            # "Modern Greek (1453-)" -> "Modern Greek"; "Bokmål, Norwegian" names two languages: left out
            name = re.sub(r"\s*\(.*?\)", "", lang.name)
            if code and "," not in name and ";" not in name:
                yield Fact(clean(name), "language_code", code, "language_code", self.name)


@dataclass
class CurrenciesSource(BuiltinRelationsSource):
    """pycountry: every ISO 4217 currency by its name."""

    relation_names: tuple[str, ...] = ("currency_iso",)
    name: str = "currencies"

    def facts(self) -> Iterator[Fact]:
        import pycountry

        for cur in sorted(pycountry.currencies, key=lambda x: x.alpha_3):
            # fund and metal codes ("Bond Markets Unit ...", "Gold") are no money anyone names
            if not cur.alpha_3.startswith("X") and "Fund" not in cur.name:
                yield Fact(clean(cur.name), "currency_iso", cur.alpha_3, "currency_code", self.name)


@dataclass
class HttpStatusSource(BuiltinRelationsSource):
    """The standard library's HTTP status codes, each by its reason phrase."""

    relation_names: tuple[str, ...] = ("http_status",)
    name: str = "http_status"

    def facts(self) -> Iterator[Fact]:
        from http import HTTPStatus

        for st in HTTPStatus:
            yield Fact(st.phrase, "http_status", str(st.value), "http_status_code", self.name)


@dataclass
class UnitsSource(BuiltinRelationsSource):
    """pint: units of measurement named by one word, with a short symbol of their own."""

    relation_names: tuple[str, ...] = ("unit_symbol",)
    name: str = "units"

    def facts(self) -> Iterator[Fact]:
        import pint

        registry = pint.UnitRegistry()
        # a registry iterates over every name and symbol: the canonical one-word names with a
        # symbol of their own ("foot_pound" is compound, "metre" an alias, "dBmW" a name again).
        # "rads" and "dtex" also parse as other units, which pint warns of: neither has a symbol of its own.
        quiet = logging.getLogger("pint.util")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            names = [n for n in sorted(registry) if re.fullmatch(r"[a-z]+", n) and registry.get_name(n) == n]
            symbols = {n: registry.get_symbol(n) for n in names}
        finally:
            quiet.setLevel(level)
        for name, sym in symbols.items():
            if sym != name and re.fullmatch(r"[A-Za-zΩÅ]{1,3}", sym):
                yield Fact(name, "unit_symbol", sym, "unit_symbol", self.name)
