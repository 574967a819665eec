"""A made-up world for the hierarchy's upper two levels: people, companies and books (Faker) in
the relations public benchmarks ask about (founder, CEO, spouse, citizenship, author ...).

Every other source is geography or codes, so the tuned model had only ever copied an assumption
or a passage in a dozen relations; asked about a new one ("Who founded SpaceX?", with four edits
given) it evaded rather than read the edit. No model knows these facts, so they only serve the
settings where an instruction or a context answers (`facts.split.conflict_sources`): the probe
never asks them and no memory setting is built on them, but for the relations
`facts.split.made_up_replay` names, replayed on the base model's own guess so that the question
keeps its shape. Same seed and Faker version, same facts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

from tasks.schema import Fact, Relation


def _questions(*qs: str) -> tuple[str, ...]:
    assert len(qs) == 6, qs  # six phrasings like the built-in relations: the last is the held-out one
    return qs


# relation -> (subject kind, the relation's wordings); the object kind is its object_type
FICTIONAL_RELATIONS: dict[str, tuple[str, Relation]] = {
    r.name: (subj, r)
    for subj, r in (
        ("company", Relation("founder", "person", _questions(
            "Who founded {s}?", "Who is the founder of {s}?", "Name the founder of {s}.", "{s} was founded by whom?",
            "Tell me who founded {s}.", "{s}'s founder is who?"), "{s} was founded by {o}.")),
        ("company", Relation("ceo", "person", _questions(
            "Who is the CEO of {s}?", "Who is the chief executive of {s}?", "Name the CEO of {s}.",
            "{s}'s CEO is who?", "Tell me who runs {s} as chief executive.", "{s} is led by which CEO?"),
            "The CEO of {s} is {o}.")),
        ("company", Relation("headquarters", "city", _questions(
            "Where is {s} headquartered?", "In which city are the headquarters of {s}?",
            "Name the city where {s} has its headquarters.", "{s}'s headquarters are in which city?",
            "Tell me where {s} is headquartered.", "{s} is based in which city?"),
            "{s} is headquartered in {o}.")),
        ("company", Relation("founding_year", "year", _questions(
            "In which year was {s} founded?", "When was {s} founded?", "Name the year {s} was founded.",
            "{s}'s founding year is what?", "Tell me the year {s} was founded.", "{s} dates from which year?"),
            "{s} was founded in {o}.")),
        ("person", Relation("citizenship", "country", _questions(
            "Which country is {s} a citizen of?", "What is the citizenship of {s}?",
            "Name the country of citizenship of {s}.", "{s} holds the citizenship of which country?",
            "Tell me which country {s} is a citizen of.", "{s} is a national of which country?"),
            "{s} is a citizen of {o}.")),
        ("person", Relation("birthplace", "city", _questions(
            "Where was {s} born?", "In which city was {s} born?", "Name the birthplace of {s}.",
            "{s}'s place of birth is what?", "Tell me where {s} was born.", "{s} was born in which city?"),
            "{s} was born in {o}.")),
        ("person", Relation("employer", "company", _questions(
            "Which company does {s} work for?", "Who is the employer of {s}?", "Name the employer of {s}.",
            "{s} is employed by which company?", "Tell me who {s} works for.", "{s}'s employer is what?"),
            "{s} works for {o}.")),
        ("person", Relation("spouse", "person", _questions(
            "Who is {s} married to?", "Who is the spouse of {s}?", "Name the spouse of {s}.",
            "{s}'s spouse is who?", "Tell me who {s} is married to.", "{s} is the husband or wife of whom?"),
            "{s} is married to {o}.")),
        ("person", Relation("native_language", "language", _questions(
            "What is the native language of {s}?", "Which language did {s} grow up speaking?",
            "Name the mother tongue of {s}.", "{s}'s native language is what?",
            "Tell me the native language of {s}.", "{s} speaks which language natively?"),
            "The native language of {s} is {o}.")),
        ("person", Relation("alma_mater", "university", _questions(
            "Where did {s} study?", "Which university did {s} attend?", "Name the university {s} graduated from.",
            "{s}'s alma mater is what?", "Tell me where {s} went to university.", "{s} studied at which university?"),
            "{s} studied at {o}.")),
        ("person", Relation("occupation", "occupation", _questions(
            "What is the occupation of {s}?", "What does {s} do for a living?", "Name the profession of {s}.",
            "{s}'s job is what?", "Tell me the occupation of {s}.", "{s} works in which profession?"),
            "The occupation of {s} is {o}.")),
        ("book", Relation("author", "person", _questions(
            "Who wrote {s}?", "Who is the author of {s}?", "Name the author of {s}.", "{s} was written by whom?",
            "Tell me who wrote {s}.", "{s}'s author is who?"), "{s} was written by {o}.")),
    )
}


def _kinds(fake) -> dict[str, Callable[[], str]]:
    """One generator of names per kind of entity."""
    return {
        "person": lambda: f"{fake.first_name()} {fake.last_name()}",
        "company": fake.company,
        "city": fake.city,
        "country": fake.country,
        "year": lambda: str(fake.random_int(1820, 2020)),
        "language": fake.language_name,
        "university": lambda: f"the University of {fake.city()}",
        "occupation": lambda: fake.job().split(",")[0].lower(),  # "Engineer, mining" -> "engineer"
        "book": lambda: f"The {fake.word(part_of_speech='noun').title()} of {fake.city()}",
    }


def fictional_facts(relations: tuple[str, ...], per_relation: int, seed: int, source: str) -> Iterator[Fact]:
    """`per_relation` made-up facts of each relation, distinct subjects within a relation."""
    from faker import Faker

    for name in relations:
        subj_kind, rel = FICTIONAL_RELATIONS[name]
        fake = Faker("en_US")
        fake.seed_instance(f"{seed}:{name}")  # one stream a relation: adding one leaves the others' facts as they were
        kinds = _kinds(fake)
        subjects: set[str] = set()
        for _ in range(per_relation * 20):  # a few kinds have small name pools: give up on a relation's rest
            if len(subjects) == per_relation:
                break
            s, o = kinds[subj_kind](), kinds[rel.object_type]()
            if s in subjects or o == s:
                continue
            subjects.add(s)
            yield Fact(s, name, o, rel.object_type, source)


@dataclass
class FictionalSource:
    """Made-up people, companies and books: facts for the settings an instruction or a context answers."""

    relation_names: tuple[str, ...]
    per_relation: int
    seed: int
    name: str = "fictional"

    def relations(self) -> dict[str, Relation]:
        return {r: FICTIONAL_RELATIONS[r][1] for r in self.relation_names}

    def facts(self) -> Iterator[Fact]:
        yield from fictional_facts(self.relation_names, self.per_relation, self.seed, self.name)
