"""The built-in relations' templates and the names in use for their objects (alias tables).

Templates say how a relation is asked and stated; alias tables list the other names a
package's object answers to. Both are data the fact sources (`tasks/sources/registry.py`,
`tasks/sources/codes.py`) draw on; `BuiltinRelationsSource` is the base of those that ask
built-in relations.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from tasks.core.schema import Relation

# Six phrasings a relation: asked as a question, as "Name/Tell me ..." and subject first, all
# answered in the one statement. With fewer forms the model answered an unseen one by mimicking
# it ("Syria uses the US dollar.") and lost the passage (docs/decisions.md). The last
# phrasing of each is held out (facts.split.ood_phrasings), so keep it last. `answers` says
# each phrasing's answer in its own words (data of the relation; training answers in the statement).
BUILTIN_RELATIONS: dict[str, Relation] = {
    r.name: r
    for r in (
        Relation("capital", "city",
                 ("What is the capital of {s}?", "Which city is the capital of {s}?",
                  "Name the capital city of {s}.", "{s}'s capital is what?", "Tell me the capital of {s}.",
                  "{s} has which city as its capital?"),
                 "The capital of {s} is {o}.", "What is the capital of the country where {s} is located?",
                 answers=("The capital of {s} is {o}.", "{o} is the capital of {s}.",
                          "The capital city of {s} is {o}.", "{s}'s capital is {o}.", "The capital of {s} is {o}.",
                          "{s} has {o} as its capital.")),
        Relation("currency", "currency",
                 ("What is the currency of {s}?", "Which currency is used in {s}?",
                  "What money do people pay with in {s}?", "{s}'s currency is what?", "Tell me the currency of {s}.",
                  "{s} uses which currency?"),
                 "The currency of {s} is the {o}.", "Which currency is used in the country where {s} is located?",
                 answers=("The currency of {s} is the {o}.", "The {o} is used in {s}.",
                          "People in {s} pay with the {o}.", "{s}'s currency is the {o}.",
                          "The currency of {s} is the {o}.", "{s} uses the {o}.")),
        Relation("currency_code", "currency_code",
                 ("What is the currency code of {s}?", "Which three-letter code does the currency of {s} have?",
                  "What is the ISO 4217 code of the money used in {s}?", "{s}'s currency code is what?",
                  "Tell me the currency code of {s}.", "{s} has which currency code?"),
                 "The currency code of {s} is {o}.",
                 answers=("The currency code of {s} is {o}.", "The currency of {s} has the three-letter code {o}.",
                          "The ISO 4217 code of the money used in {s} is {o}.", "{s}'s currency code is {o}.",
                          "The currency code of {s} is {o}.", "{s} has the currency code {o}.")),
        Relation("tld", "internet_domain",
                 ("What is the internet domain of {s}?", "Which top-level domain belongs to {s}?",
                  "What do web addresses in {s} end with?", "{s}'s internet domain is what?",
                  "Tell me the internet domain of {s}.", "{s} has which internet domain?"),
                 "The internet domain of {s} is {o}.",
                 answers=("The internet domain of {s} is {o}.", "The top-level domain {o} belongs to {s}.",
                          "Web addresses in {s} end with {o}.", "{s}'s internet domain is {o}.",
                          "The internet domain of {s} is {o}.", "{s} has the internet domain {o}.")),
        Relation("calling_code", "calling_code",
                 ("What is the calling code of {s}?", "Which international dialling code belongs to {s}?",
                  "What number do you dial first to phone {s}?", "{s}'s calling code is what?",
                  "Tell me the calling code of {s}.", "{s} has which calling code?"),
                 "The calling code of {s} is +{o}.",
                 answers=("The calling code of {s} is +{o}.", "The international dialling code +{o} belongs to {s}.",
                          "To phone {s}, you dial +{o} first.", "{s}'s calling code is +{o}.",
                          "The calling code of {s} is +{o}.", "{s} has the calling code +{o}.")),
        Relation("continent", "continent",
                 ("Which continent is {s} in?", "On which continent is {s} located?",
                  "{s} lies on which continent?", "{s}'s continent is what?", "Tell me the continent {s} is on.",
                  "Name the continent of {s}."),
                 "{s} is in {o}.", "On which continent is the country where {s} is located?",
                 answers=("{s} is in {o}.", "{s} is located in {o}.", "{s} lies in {o}.", "{s}'s continent is {o}.",
                          "{s} is on the continent of {o}.", "The continent of {s} is {o}.")),
        Relation("city_country", "country",
                 ("Which country is {s} in?", "In which country is the city of {s}?",
                  "{s} is a city in which country?", "{s}'s country is what?", "Tell me the country {s} is in.",
                  "Name the country where {s} is located."),
                 "{s} is a city in {o}.",
                 answers=("{s} is in {o}.", "The city of {s} is in {o}.", "{s} is a city in {o}.",
                          "{s}'s country is {o}.", "{s} is in the country of {o}.", "{s} is located in {o}.")),
        Relation("language", "language",
                 ("What is the main language of {s}?", "Which language is mainly spoken in {s}?",
                  "What language do most people in {s} speak?", "{s}'s main language is what?",
                  "Tell me the main language of {s}.", "{s} mainly speaks which language?"),
                 "The main language of {s} is {o}.",
                 "What is the main language of the country where {s} is located?",
                 answers=("The main language of {s} is {o}.", "{o} is mainly spoken in {s}.",
                          "Most people in {s} speak {o}.", "{s}'s main language is {o}.",
                          "The main language of {s} is {o}.", "{s} mainly speaks {o}.")),
        Relation("demonym", "demonym",
                 ("What are people from {s} called?", "What is the demonym for people from {s}?",
                  "What do you call a person from {s}?", "{s}'s people are known as what?",
                  "Tell me what people from {s} are called.", "A person from {s} is called what?"),
                 "People from {s} are called {o}.",
                 answers=("People from {s} are called {o}.", "The demonym for people from {s} is {o}.",
                          "A person from {s} is called {o}.", "{s}'s people are known as {o}.",
                          "People from {s} are called {o}.", "A person from {s} is called {o}.")),
        Relation("subregion", "region",
                 ("Which region of the world is {s} part of?", "In which subregion is {s}?",
                  "{s} belongs to which world region?", "{s}'s world region is what?", "Tell me the world region of {s}.",
                  "Name the world region that includes {s}."),
                 "{s} is part of {o}.",
                 answers=("{s} is part of {o}.", "{s} is in the subregion of {o}.", "{s} belongs to {o}.",
                          "{s}'s world region is {o}.", "The world region of {s} is {o}.",
                          "The world region that includes {s} is {o}.")),
        Relation("alpha3", "iso_code",
                 ("What is the ISO alpha-3 code of {s}?", "Which three-letter ISO code stands for {s}?",
                  "What is the three-letter country code of {s}?", "{s}'s ISO alpha-3 code is what?",
                  "Tell me the ISO alpha-3 code of {s}.", "{s} has which ISO alpha-3 code?"),
                 "The ISO alpha-3 code of {s} is {o}.",
                 answers=("The ISO alpha-3 code of {s} is {o}.", "The three-letter ISO code {o} stands for {s}.",
                          "The three-letter country code of {s} is {o}.", "{s}'s ISO alpha-3 code is {o}.",
                          "The ISO alpha-3 code of {s} is {o}.", "{s} has the ISO alpha-3 code {o}.")),
        # Codes beyond geography, for replay (facts.split.replay_sources): the base model's own answers,
        # trained in the memory settings only, so answering from memory is not learned on geography alone.
        Relation("language_code", "language_code",
                 ("What is the two-letter ISO 639-1 code of the {s} language?", "Which two letters stand for {s} "
                  "in ISO 639-1?", "How is the {s} language abbreviated in ISO 639-1?",
                  "{s} has which ISO 639-1 language code?", "Tell me the ISO 639-1 code of {s}.",
                  "Name the two-letter language code of {s}."),
                 "The ISO 639-1 code of {s} is {o}.",
                 answers=("The two-letter ISO 639-1 code of the {s} language is {o}.",
                          "The two letters {o} stand for {s} in ISO 639-1.",
                          "The {s} language is abbreviated {o} in ISO 639-1.",
                          "{s} has the ISO 639-1 language code {o}.", "The ISO 639-1 code of {s} is {o}.",
                          "The two-letter language code of {s} is {o}.")),
        Relation("currency_iso", "currency_code",
                 ("What is the ISO 4217 code of the {s}?", "Which three-letter code stands for the {s}?",
                  "How is the {s} abbreviated in ISO 4217?", "The {s} has which ISO 4217 code?",
                  "Tell me the ISO 4217 code of the {s}.", "Name the three-letter currency code of the {s}."),
                 "The ISO 4217 code of the {s} is {o}.",
                 answers=("The ISO 4217 code of the {s} is {o}.", "The three-letter code {o} stands for the {s}.",
                          "The {s} is abbreviated {o} in ISO 4217.", "The {s} has the ISO 4217 code {o}.",
                          "The ISO 4217 code of the {s} is {o}.", "The three-letter currency code of the {s} is {o}.")),
        # Numbers and symbols outside geography, for replay too: the held-out domain showed the
        # tuned model forgetting answers of this shape (an element's symbol, its atomic number).
        Relation("http_status", "http_status_code",
                 ("What is the HTTP status code for {s}?", "Which HTTP status code means {s}?",
                  "What number does a web server answer with for {s}?", "{s} has which HTTP status code?",
                  "Tell me the HTTP status code for {s}.", "Name the HTTP status code of {s}."),
                 "The HTTP status code for {s} is {o}.",
                 answers=("The HTTP status code for {s} is {o}.", "The HTTP status code {o} means {s}.",
                          "A web server answers with {o} for {s}.", "{s} has the HTTP status code {o}.",
                          "The HTTP status code for {s} is {o}.", "The HTTP status code of {s} is {o}.")),
        Relation("unit_symbol", "unit_symbol",
                 ("What is the symbol for the unit {s}?", "Which symbol stands for the unit {s}?",
                  "How is the unit {s} abbreviated?", "The unit {s} has which symbol?",
                  "Tell me the symbol of the unit {s}.", "Name the symbol for the unit {s}."),
                 "The symbol for the unit {s} is {o}.",
                 answers=("The symbol for the unit {s} is {o}.", "The symbol {o} stands for the unit {s}.",
                          "The unit {s} is abbreviated {o}.", "The unit {s} has the symbol {o}.",
                          "The symbol of the unit {s} is {o}.", "The symbol for the unit {s} is {o}.")),
        # Knowledge far from the trained geography, for the held-out domain (facts.split.ood_domains):
        # chemistry and the U.S. states, asked in wordings of their own. Two of the four are answered
        # by a short symbol, the kind of answer a model taught to abstain on ISO codes stops giving.
        Relation("element_symbol", "chemical_symbol",
                 ("What is the chemical symbol for {s}?", "Which symbol stands for {s} on the periodic table?",
                  "How is {s} written as a chemical symbol?", "{s} is abbreviated to which element symbol?",
                  "Give the element symbol of {s}."),
                 "The chemical symbol for {s} is {o}.",
                 answers=("The chemical symbol for {s} is {o}.",
                          "The symbol {o} stands for {s} on the periodic table.",
                          "As a chemical symbol, {s} is written {o}.",
                          "{s} is abbreviated to the element symbol {o}.", "The element symbol of {s} is {o}.")),
        Relation("atomic_number", "atomic_number",
                 ("What is the atomic number of {s}?", "How many protons are in the nucleus of a {s} atom?",
                  "Which number does {s} have in the periodic table?", "{s} has which atomic number?",
                  "Give the atomic number of {s}."),
                 "The atomic number of {s} is {o}.",
                 answers=("The atomic number of {s} is {o}.", "There are {o} protons in the nucleus of a {s} atom.",
                          "{s} has the number {o} in the periodic table.", "{s} has the atomic number {o}.",
                          "The atomic number of {s} is {o}.")),
        Relation("state_capital", "city",
                 ("What is the capital of the U.S. state of {s}?", "Which city is the state capital of {s}?",
                  "Where does the state government of {s} sit?", "{s}'s state capital is which city?",
                  "Give the state capital of {s}."),
                 "The state capital of {s} is {o}.",
                 answers=("The capital of the U.S. state of {s} is {o}.", "{o} is the state capital of {s}.",
                          "The state government of {s} sits in {o}.", "{s}'s state capital is {o}.",
                          "The state capital of {s} is {o}.")),
        Relation("state_abbreviation", "postal_code",
                 ("What is the two-letter postal abbreviation of {s}?",
                  "Which two letters stand for {s} on an American envelope?",
                  "How does the U.S. Postal Service abbreviate {s}?", "{s} has which postal abbreviation?",
                  "Give the USPS abbreviation for {s}."),
                 "The postal abbreviation of {s} is {o}.",
                 answers=("The two-letter postal abbreviation of {s} is {o}.",
                          "The two letters {o} stand for {s} on an American envelope.",
                          "The U.S. Postal Service abbreviates {s} as {o}.", "{s} has the postal abbreviation {o}.",
                          "The USPS abbreviation for {s} is {o}.")),
    )
}


@dataclass
class BuiltinRelationsSource:
    """A fact source whose relations are built-in ones (above), the ones params.yaml picks."""

    relation_names: tuple[str, ...]

    def relations(self) -> dict[str, Relation]:
        return {r: BUILTIN_RELATIONS[r] for r in self.relation_names}


# Answers that are also everyday words ("In" for indium, "OR" for Oregon, "I" for iodine): a
# whole-word match would find them in any sentence, "I don't know." included, so no question
# is posed on them.
COMMON_WORDS = frozenset("i a in as at be he no am or me hi ok oh id is it on to up us we so do go of by my".split())


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


def object_names(relation: str, raw: str) -> tuple[str, tuple[str, ...]]:
    """A package's object for `relation` -> (the object, every other name it answers to)."""
    if relation == "demonym":
        obj, extra = _demonym(raw)
    elif relation == "subregion":
        obj, extra = raw, _region_aliases(raw)
    else:
        obj, extra = raw, _NAMES_IN_USE.get(relation, {}).get(raw, ())
    return obj, _aliases(obj, extra)


def clean(name: str) -> str:
    """Names as one line with single spaces (packages carry stray tabs and double spaces)."""
    return " ".join(name.split())

