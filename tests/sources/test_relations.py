import pytest

from tasks.core.metrics import matches
from tasks.core.schema import KprefError, Relation
from tasks.sources.registry import (
    CitiesSource,
    CountryInfoSource,
    ElementsSource,
    UsStatesSource,
)
from tasks.sources.relations import BUILTIN_RELATIONS, object_names


def test_subregions_answer_to_their_short_names():
    regions = {f.subject: f for f in CountryInfoSource(("subregion",), 0).facts()}
    assert regions["Japan"].object == "Eastern Asia" and matches("Japan is part of East Asia.", [
        regions["Japan"].object, *regions["Japan"].aliases])
    assert "Southeast Asia" in regions["Thailand"].aliases
    assert regions["Nigeria"].aliases == ()  # "Sub-Saharan Africa" has no short form
    # a different region's short name is still wrong
    assert not matches("Japan is part of South Asia.", [regions["Japan"].object, *regions["Japan"].aliases])


def test_names_in_use_and_plural_demonyms_are_aliases():
    info = {(f.subject, f.relation): f for f in CountryInfoSource(("language", "demonym"), 0).facts()}
    right = lambda text, f: matches(text, [f.object, *f.aliases])  # noqa: E731
    assert right("People from Haiti are called Haitians.", info["Haiti", "demonym"])
    assert right("The main language of Kyrgyzstan is Kyrgyz.", info["Kyrgyzstan", "language"])
    assert right("People from Tajikistan are called Tajiks.", info["Tajikistan", "demonym"])
    assert right("They are Batswana.", info["Botswana", "demonym"])
    # two peoples in one field: the first is the object, the second an alias
    assert info["Bosnia and Herzegovina", "demonym"].object == "Bosnian"
    assert right("Herzegovinian", info["Bosnia and Herzegovina", "demonym"])
    assert info["Switzerland", "demonym"].aliases == ()  # "Swiss" is its own plural
    assert not right("People from Haiti are called Dominicans.", info["Haiti", "demonym"])
    cities = {f.subject: f for f in CitiesSource(3_000_000).facts()}
    assert right("London is a city in the UK.", cities["London"])
    assert not right("Seoul is a city in North Korea.", cities["Seoul"])


def test_object_names_for_a_relation_without_alias_table():
    assert object_names("capital", "Lima") == ("Lima", ())
    assert object_names("capital", "Bogotá") == ("Bogotá", ("Bogota",))  # the ASCII spelling answers too


def test_every_builtin_relation_holds_out_its_last_phrasing_in_statement_form():
    # the held-out domains' relations are never trained: no phrasing of theirs need be held back
    domain = {*ElementsSource(("element_symbol", "atomic_number")).relations(),
              *UsStatesSource(("state_capital", "state_abbreviation")).relations()}
    for name, rel in BUILTIN_RELATIONS.items():
        assert len(rel.questions) == (5 if name in domain else 6) and all("{s}" in q for q in rel.questions)
        assert "{s}" in rel.statement and "{o}" in rel.statement


def test_every_builtin_relation_answers_each_question_in_its_own_words():
    for rel in BUILTIN_RELATIONS.values():
        assert len(rel.answers) == len(rel.questions)
        assert all("{s}" in a and "{o}" in a for a in rel.answers)
    capital = BUILTIN_RELATIONS["capital"]
    assert capital.answer("Which city is the capital of {s}?", "Peru", "Lima") == "Lima is the capital of Peru."
    assert capital.answer("Some other wording about {s}?", "Peru", "Lima") == "The capital of Peru is Lima."


def test_answers_come_one_per_question_or_not_at_all():
    with pytest.raises(KprefError, match="'capital': 1 answers for 2 questions"):
        Relation("capital", "city", ("Capital of {s}?", "{s}'s capital?"), "The capital of {s} is {o}.",
                 answers=("It is {o}.",))
    bare = Relation("capital", "city", ("Capital of {s}?",), "The capital of {s} is {o}.")
    assert bare.answer("Capital of {s}?", "Peru", "Lima") == "The capital of Peru is Lima."
