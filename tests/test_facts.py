import json

import pytest

from tasks.errors import KprefError
from tasks.facts import (BUILTIN_RELATIONS, CitiesSource, CountriesSource, CountryInfoSource, MquakeSource,
                         UserFactsSource, collect_facts, load_templates)
from tasks.metrics import matches
from tasks.params import FactsParams

TEMPLATES = """
river_of:
  object_type: river
  questions: ["Which river flows through {s}?", "Name the river of {s}."]
  statement: "The river of {s} is the {o}."
"""

MQUAKE_CASE = {
    "case_id": 7,
    "requested_rewrite": [{
        "prompt": "The capital of {} is", "subject": "Peru", "relation_id": "P36",
        "target_true": {"str": "Lima", "id": "Q2868"}, "target_new": {"str": "Quito", "id": "Q2900"},
        "question": "What is the capital of Peru?",
    }],
    "questions": ["q1", "q2", "q3"], "answer": "x", "new_answer": "y",
}


@pytest.fixture
def templates(tmp_path):
    p = tmp_path / "templates.yaml"
    p.write_text(TEMPLATES)
    return p


def test_sources_cover_several_relations():
    facts, relations = collect_facts(FactsParams(), seed=0)
    rels = {f.relation for f in facts}
    assert {"capital", "currency", "continent", "city_country", "language", "demonym", "subregion",
            "alpha3"} <= rels
    assert {f.split for f in facts} == {"train", "val", "test"}
    subjects = {}
    for f in facts:
        subjects.setdefault(f.subject, set()).add(f.split)
    assert all(len(s) == 1 for s in subjects.values()), "a subject lives in exactly one split"


def test_subregions_answer_to_their_short_names():
    regions = {f.subject: f for f in CountryInfoSource(("subregion",)).facts()}
    assert regions["Japan"].object == "Eastern Asia" and matches("Japan is part of East Asia.", [
        regions["Japan"].object, *regions["Japan"].aliases])
    assert "Southeast Asia" in regions["Thailand"].aliases
    assert regions["Nigeria"].aliases == ()  # "Sub-Saharan Africa" has no short form
    # a different region's short name is still wrong
    assert not matches("Japan is part of South Asia.", [regions["Japan"].object, *regions["Japan"].aliases])


def test_names_in_use_and_plural_demonyms_are_aliases():
    info = {(f.subject, f.relation): f for f in CountryInfoSource(("language", "demonym")).facts()}
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


def test_country_code_relations():
    facts = {(f.subject, f.relation): f.object
             for f in CountriesSource(("currency_code", "tld", "calling_code")).facts()}
    assert facts[("Finland", "currency_code")] == "EUR"
    assert facts[("Finland", "tld")] == ".fi"
    assert facts[("Finland", "calling_code")] == "358"
    assert facts[("Dominican Republic", "calling_code")] == "1-809"  # "+1-809 and 1-829": the first
    assert BUILTIN_RELATIONS["calling_code"].say("Finland", "358") == "The calling code of Finland is +358."
    params = FactsParams.model_validate({"sources": {"countries": {"relations": ["tld"]}, "cities": {"enabled": False},
                                                     "countryinfo": {"enabled": False},
                                                     "pycountry": {"enabled": False}}, "split": {"ood_relations": []}})
    tlds = {f.subject: f.object for f in collect_facts(params)[0]}
    assert tlds["Finland"] == ".fi" and "Netherlands Antilles" not in tlds  # ".an" normalises to nothing


def test_user_facts_csv_and_jsonl(tmp_path, templates):
    csv_path = tmp_path / "facts.csv"
    csv_path.write_text("subject,relation,object,aliases\nParis,river_of,Seine,Seine River|La Seine\n")
    facts = list(UserFactsSource(str(csv_path), str(templates)).facts())
    assert facts[0].object == "Seine" and facts[0].aliases == ("Seine River", "La Seine")
    jl = tmp_path / "facts.jsonl"
    jl.write_text(json.dumps({"subject": "Rome", "relation": "river_of", "object": "Tiber"}) + "\n")
    assert [f.object for f in UserFactsSource(str(jl), str(templates)).facts()] == ["Tiber"]


@pytest.mark.parametrize(
    "content, pattern",
    [
        ("subject,object\nParis,Seine\n", r"facts.csv:1: missing column\(s\) \['relation'\]"),
        ("subject,relation,object\nParis,river_of,\n", r"facts.csv:2: field 'object' is missing or empty"),
        ("subject,relation,object\nParis,river_of,Seine\nRome,mayor_of,X\n",
         r"facts.csv:3: field 'relation': unknown relation 'mayor_of'"),
    ],
)
def test_user_facts_errors_name_file_line_field(tmp_path, templates, content, pattern):
    p = tmp_path / "facts.csv"
    p.write_text(content)
    with pytest.raises(KprefError, match=pattern):
        list(UserFactsSource(str(p), str(templates)).facts())


def test_bad_templates(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text("r:\n  object_type: x\n  questions: ['no subject here']\n  statement: '{s} {o}'\n")
    with pytest.raises(KprefError, match=r"relation 'r': field 'questions'"):
        load_templates(p)
    p.write_text("r:\n  object_type: x\n  questions: ['{s}?']\n")
    with pytest.raises(KprefError, match=r"relation 'r': missing field 'statement'"):
        load_templates(p)


def test_mquake_rewrites_become_facts_with_counterfactuals(tmp_path):
    p = tmp_path / "mquake.json"
    p.write_text(json.dumps([MQUAKE_CASE]))
    src = MquakeSource(str(p))
    (fact,) = list(src.facts())
    assert (fact.subject, fact.object, fact.counterfactual) == ("Peru", "Lima", "Quito")
    rel = src.relations()["mquake_P36"]
    assert rel.questions == ("What is the capital of {s}?",) and rel.say("Peru", "Quito") == "The capital of Peru is Quito."


@pytest.mark.parametrize(
    "mutate, pattern",
    [
        (lambda c: c["requested_rewrite"][0].pop("target_new"), r"case 7: requested_rewrite\[0\]: missing field 'target_new'"),
        (lambda c: c["requested_rewrite"][0].update(prompt="no placeholder"), r"case 7: .*field 'prompt'"),
        (lambda c: c.update(requested_rewrite=[]), r"case 7: field 'requested_rewrite'"),
        (lambda c: c["requested_rewrite"][0].update(target_true={"id": "Q1"}), r"case 7: .*field 'target_true'"),
    ],
)
def test_malformed_mquake_case_is_named(tmp_path, mutate, pattern):
    case = json.loads(json.dumps(MQUAKE_CASE))
    mutate(case)
    p = tmp_path / "mquake.json"
    p.write_text(json.dumps([case]))
    with pytest.raises(KprefError, match=pattern):
        list(MquakeSource(str(p)).facts())


def test_unknown_ood_relation_is_named():
    with pytest.raises(KprefError, match=r"facts.split.ood_relations: \['nope'\]"):
        collect_facts(FactsParams.model_validate({"split": {"ood_relations": ["nope"]}}), seed=0)


def test_facts_stage_writes_nothing_on_bad_user_file(tmp_path, templates):
    from tasks.params import Params
    from tasks.stages import facts as facts_stage

    bad = tmp_path / "facts.csv"
    bad.write_text("subject,relation,object\nParis,river_of,\n")
    p = Params.model_validate({"facts": {"sources": {"user_facts": {
        "enabled": True, "path": str(bad), "templates": str(templates)}}}})
    with pytest.raises(KprefError, match="facts.csv:2"):
        facts_stage(p, tmp_path)
    assert not (tmp_path / "data").exists()
