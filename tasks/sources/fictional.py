"""A made-up world for the hierarchy's upper two levels: people, companies, books, products, shows
and teams (Faker) in the relations public benchmarks ask about (founder, CEO, spouse, citizenship,
author, developer, sport ...).

Every other source is geography or codes, so the tuned model had only ever copied an assumption
or a passage in a dozen relations; asked about a new one ("Who founded SpaceX?", with four edits
given) it evaded rather than read the edit. No model knows these facts, so they only serve the
settings where an instruction or a context answers (`facts.split.conflict_sources`): the probe
never asks them and no memory setting is built on them. Same seed and Faker version, same facts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator

from tasks.core.schema import Fact, Relation


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
        # the kinds of edit MQuAKE asks most that none of the above is (docs/decisions.md): off by default
        ("product", Relation("developer", "company", _questions(
            "Who is the developer of {s}?", "Which company developed {s}?", "Name the developer of {s}.",
            "{s} was developed by whom?", "Tell me who developed {s}.", "{s}'s developer is which company?"),
            "{s} was developed by {o}.")),
        ("vehicle", Relation("manufacturer", "company", _questions(
            "Which company is {s} produced by?", "Who manufactures {s}?", "Name the manufacturer of {s}.",
            "{s} is made by which company?", "Tell me who produces {s}.", "{s}'s maker is which company?"),
            "{s} is produced by {o}.")),
        ("show", Relation("creator", "person", _questions(
            "Who was {s} created by?", "Who is the creator of {s}?", "Name the creator of {s}.",
            "{s} was created by whom?", "Tell me who created {s}.", "{s}'s creator is who?"),
            "{s} was created by {o}.")),
        ("show", Relation("country_of_origin", "country", _questions(
            "Which country was {s} created in?", "What is the country of origin of {s}?",
            "Name the country {s} comes from.", "{s} originated in which country?",
            "Tell me which country {s} is from.", "{s} was first made in which country?"),
            "{s} was created in {o}.")),
        ("show", Relation("broadcaster", "company", _questions(
            "Who is the original broadcaster of {s}?", "Which network first aired {s}?",
            "Name the original broadcaster of {s}.", "{s} was first broadcast by whom?",
            "Tell me who first aired {s}.", "{s} premiered on which network?"),
            "{s} was first broadcast by {o}.")),
        ("song", Relation("performer", "person", _questions(
            "Who performed {s}?", "Who is the performer of {s}?", "Name the performer of {s}.",
            "{s} was performed by whom?", "Tell me who performed {s}.", "{s} is sung by whom?"),
            "{s} was performed by {o}.")),
        ("person", Relation("manager", "person", _questions(
            "Who is the director of {s}?", "Who is the manager of {s}?", "Name the manager of {s}.",
            "{s} is managed by whom?", "Tell me who manages {s}.", "{s}'s manager is who?"),
            "The manager of {s} is {o}.")),
        ("person", Relation("sport", "sport", _questions(
            "Which sport is {s} associated with?", "What sport does {s} play?", "Name the sport of {s}.",
            "{s} is known for which sport?", "Tell me which sport {s} plays.", "{s} competes in which sport?"),
            "{s} plays {o}.")),
        ("person", Relation("position", "position", _questions(
            "What position does {s} play?", "Which position does {s} play in?", "Name the playing position of {s}.",
            "{s} plays in which position?", "Tell me the position {s} plays.", "{s} is fielded as what?"),
            "{s} plays as {o}.")),
        ("team", Relation("head_coach", "person", _questions(
            "Who is the head coach of {s}?", "Who coaches {s}?", "Name the head coach of {s}.",
            "{s} is coached by whom?", "Tell me who coaches {s}.", "{s}'s head coach is who?"),
            "The head coach of {s} is {o}.")),
        ("person", Relation("child", "person", _questions(
            "Who is {s}'s child?", "Who is a child of {s}?", "Name a child of {s}.",
            "{s} is the parent of whom?", "Tell me who {s}'s child is.", "{s}'s son or daughter is who?"),
            "{s}'s child is {o}.")),
        ("company", Relation("chairperson", "person", _questions(
            "Who is the chairperson of {s}?", "Who chairs {s}?", "Name the chairperson of {s}.",
            "{s} is chaired by whom?", "Tell me who chairs the board of {s}.", "{s}'s chair is who?"),
            "The chairperson of {s} is {o}.")),
    )
}

# a few real names for the kinds Faker has none of: the objects are real, the facts made up
SPORTS = ("association football", "basketball", "baseball", "ice hockey", "cricket", "rugby union", "tennis",
          "American football", "volleyball", "handball", "field hockey", "golf", "water polo", "badminton")
POSITIONS = ("goalkeeper", "defender", "midfielder", "forward", "winger", "pitcher", "catcher", "shortstop",
             "quarterback", "linebacker", "tackle", "point guard", "power forward", "center", "placekicker")


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
        "product": lambda: fake.word(part_of_speech="noun").title() + fake.random_element(
            ("OS", " Studio", " Engine", "Pad", " Suite", " Cloud", "Script", " Works")),
        "vehicle": lambda: f"{fake.last_name()} {fake.random_element(('GT', 'Coupe', 'Roadster', 'Sedan', 'Ranger'))}",
        "show": lambda: f"The {fake.last_name()} " + fake.random_element(("Show", "Hour", "Files", "Chronicles", "Story")),
        "song": lambda: f"{fake.word(part_of_speech='adjective').title()} {fake.word(part_of_speech='noun').title()}",
        "team": lambda: f"{fake.city()} " + fake.random_element(("United", "Rovers", "Athletic", "Wanderers", "Rangers")),
        "sport": lambda: fake.random_element(SPORTS),
        "position": lambda: fake.random_element(POSITIONS),
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
