import json

import pytest

from tasks.core.schema import KprefError
from tasks.facts import collect_facts
from tasks.sources.codes import (
    CurrenciesSource,
    HttpStatusSource,
    LanguagesSource,
    UnitsSource,
)
from tasks.sources.registry import (
    CountriesSource,
    ElementsSource,
    MquakeSource,
    UserFactsSource,
    UsStatesSource,
    load_templates,
)
from tasks.sources.relations import BUILTIN_RELATIONS
from tests.conftest import shipped

MQUAKE_CASE = {
    "case_id": 7,
    "requested_rewrite": [{
        "prompt": "The capital of {} is", "subject": "Peru", "relation_id": "P36",
        "target_true": {"str": "Lima", "id": "Q2868"}, "target_new": {"str": "Quito", "id": "Q2900"},
        "question": "What is the capital of Peru?",
    }],
    "questions": ["q1", "q2", "q3"], "answer": "x", "new_answer": "y",
}



def test_country_code_relations():
    facts = {(f.subject, f.relation): f.object
             for f in CountriesSource(("currency_code", "tld", "calling_code"), 0).facts()}
    assert facts[("Finland", "currency_code")] == "EUR"
    assert facts[("Finland", "tld")] == ".fi"
    assert facts[("Finland", "calling_code")] == "358"
    assert facts[("Dominican Republic", "calling_code")] == "1-809"  # "+1-809 and 1-829": the first
    assert BUILTIN_RELATIONS["calling_code"].say("Finland", "358") == "The calling code of Finland is +358."
    params = shipped({"facts": {"sources": {"countries": {"relations": ["tld"], "min_population": 0},
                                            "cities": {"enabled": False}, "countryinfo": {"enabled": False},
                                            "pycountry": {"enabled": False}}, "split": {"ood_relations": []}}}).facts
    tlds = {f.subject: f.object for f in collect_facts(params, seed=0)[0]}
    assert tlds["Finland"] == ".fi" and "Netherlands Antilles" not in tlds  # ".an" normalises to nothing


def test_held_out_domain_sources():
    elements = {(f.subject, f.relation): f.object for f in ElementsSource(("element_symbol", "atomic_number")).facts()}
    assert elements[("Gold", "element_symbol")] == "Au" and elements[("Gold", "atomic_number")] == "79"
    assert len({s for s, _ in elements}) == 118  # periodictable's element 0, the neutron, is no element
    states = {(f.subject, f.relation): f.object
              for f in UsStatesSource(("state_capital", "state_abbreviation")).facts()}
    assert states[("Texas", "state_capital")] == "Austin" and states[("Texas", "state_abbreviation")] == "TX"
    assert BUILTIN_RELATIONS["element_symbol"].say("Gold", "Au") == "The chemical symbol for Gold is Au."


def test_replay_sources():
    langs = {f.subject: f.object for f in LanguagesSource().facts()}
    assert langs["French"] == "fr" and langs["Modern Greek"] == "el"  # "(1453-)" dropped
    assert not any("," in s for s in langs)  # "Bokmål, Norwegian" names two languages
    currencies = {f.subject: f.object for f in CurrenciesSource().facts()}
    assert currencies["Euro"] == "EUR" and "Gold" not in currencies  # no metal or fund codes
    assert BUILTIN_RELATIONS["currency_iso"].say("Euro", "EUR") == "The ISO 4217 code of the Euro is EUR."


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
    p.write_text("r:\n  object_type: x\n  questions: ['{s}?', 'Of {s}?']\n  statement: '{s} {o}'\n"
                 "  answers: ['{s} is {o}.']\n")
    with pytest.raises(KprefError, match=r"relation 'r': field 'answers' must list one statement per question \(2\)"):
        load_templates(p)
    p.write_text("r:\n  object_type: x\n  questions: ['{s}?', 'Of {s}?']\n  statement: '{s} {o}'\n"
                 "  answers: ['{s} is {o}.', 'Of {s}: {o}.']\n")
    assert load_templates(p)["r"].answer("Of {s}?", "A", "B") == "Of A: B."


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


def test_replayed_numbers_and_symbols_beyond_geography():
    status = {f.subject: f.object for f in HttpStatusSource().facts()}
    assert status["Not Found"] == "404" and status["I'm a Teapot"] == "418"
    units = {f.subject: f.object for f in UnitsSource().facts()}
    assert units["kilogram"] == "kg" and units["newton"] == "N" and units["ohm"] == "Ω" and units["hertz"] == "Hz"
    # canonical one-word names only: no alias, compound, symbol or ambiguous parse ("rads") as a subject
    assert not {"metre", "foot_pound", "kg", "rads", "dtex"} & set(units)
    assert BUILTIN_RELATIONS["unit_symbol"].say("newton", "N") == "The symbol for the unit newton is N."
    assert BUILTIN_RELATIONS["http_status"].say("Not Found", "404") == "The HTTP status code for Not Found is 404."
