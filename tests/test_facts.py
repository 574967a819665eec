from collections import Counter
from typing import get_args

import pytest

from tasks.core.schema import OOD_DOMAIN, KprefError, read_facts, read_relations
from tasks.facts import collect_facts, run, split_subjects, write_facts
from tasks.params.full import parse_params
from tests.conftest import ROOT, shipped


def test_sources_cover_several_relations():
    facts, relations = collect_facts(shipped().facts, seed=0)
    rels = {f.relation for f in facts}
    assert {"capital", "currency", "continent", "city_country", "language", "demonym", "subregion",
            "alpha3"} <= rels
    assert {f.split for f in facts} == {"train", "val", "test", "test_ood_domain"}
    subjects = {}
    for f in facts:
        subjects.setdefault(f.subject, set()).add(f.split)
    assert all(len(s) == 1 for s in subjects.values()), "a subject lives in exactly one split"


def test_subject_split_is_seeded_and_exhaustive():
    subjects = [f"s{i}" for i in range(40)]
    a = split_subjects(subjects, 0.25, 0.1, seed=1)
    assert a == split_subjects(list(reversed(subjects)), 0.25, 0.1, seed=1)
    assert a != split_subjects(subjects, 0.25, 0.1, seed=2)
    assert sorted(a) == sorted(subjects) and sum(v == "test" for v in a.values()) == 10
    with pytest.raises(KprefError, match="too few"):
        split_subjects(["a", "b"], 0.5, 0.5, seed=0)


def test_written_facts_read_back_the_same(tmp_path, facts_params):
    facts = write_facts(facts_params, 0, tmp_path / "facts.jsonl", tmp_path / "relations.json")
    assert read_facts(tmp_path / "facts.jsonl") == facts
    relations = read_relations(tmp_path / "relations.json")
    assert {f.relation for f in facts} <= set(relations)
    assert relations["capital"].say("Peru", "Lima") == "The capital of Peru is Lima."


def test_unknown_ood_relation_is_named():
    with pytest.raises(KprefError, match=r"facts.split.ood_relations: \['nope'\]"):
        collect_facts(shipped({"facts": {"split": {"ood_relations": ["nope"]}}}).facts, seed=0)


def test_held_out_domains_never_share_a_trained_subject():
    facts, _ = collect_facts(shipped().facts, seed=0)
    domain = [f for f in facts if f.split == OOD_DOMAIN]
    assert {f.source for f in domain} == {"elements", "us_states"}
    assert {f.relation for f in domain} == {"element_symbol", "atomic_number", "state_capital", "state_abbreviation"}
    assert not {f.relation for f in domain} & {f.relation for f in facts if f.split != OOD_DOMAIN}
    assert "Georgia" not in {f.subject for f in domain}  # the state: the country is a trained subject
    assert "Georgia" in {f.subject for f in facts if f.split != OOD_DOMAIN}
    # answers that are everyday words cannot be scored by whole-word matching: no question on them
    objects = {f.object for f in domain}
    assert {"Au", "TX", "79"} <= objects and not {"I", "In", "IN", "OR", "He"} & objects
    # a held-out domain changes nothing of the trained sources' facts or their split
    off = {"sources": {"elements": {"enabled": False}, "us_states": {"enabled": False}}, "split": {"ood_domains": []}}
    assert [f for f in facts if f.split != OOD_DOMAIN] == collect_facts(shipped({"facts": off}).facts, seed=0)[0]


REPLAYED = ("languages", "currencies", "http_status", "units")


def test_replay_sources_are_only_trained():
    on = {"sources": {s: {"enabled": True} for s in REPLAYED}, "split": {"replay_sources": list(REPLAYED)}}
    facts, _ = collect_facts(shipped({"facts": on}).facts, seed=0)
    replayed = [f for f in facts if f.source in REPLAYED]
    assert {f.source for f in replayed} == set(REPLAYED) and {f.split for f in replayed} == {"train"}
    # the tested sources keep their subjects and split
    off = {"sources": {s: {"enabled": False} for s in REPLAYED}, "split": {"replay_sources": []}}
    assert [f for f in facts if f not in replayed] == collect_facts(shipped({"facts": off}).facts, seed=0)[0]


@pytest.mark.parametrize("domains, pattern", [
    ("[elements, nope]", r"split.ood_domains: \['nope'\] is not an enabled source"),
    ("[countries, cities, countryinfo, pycountry, languages, currencies, elements, us_states, fictional]",
     "nothing is left to train on"),
    ("[countries, cities, countryinfo, pycountry, elements, us_states]", "leave no source to test the hierarchy on"),
    ("[elements, us_states]\n    replay_sources: [elements]", r"replay_sources: \['elements'\] is not an enabled "
                                                              "source outside the other split lists"),
    ("[elements, us_states]\n    conflict_sources: [fictional, elements]", r"conflict_sources: \['elements'\] is not "
                                                                           "an enabled source outside the other split lists"),
])
def test_bad_ood_domains_are_named(domains, pattern):
    text = (ROOT / "params.yaml").read_text()
    for key in ("replay_sources", "conflict_sources"):
        if key in domains:  # the test's own line replaces the shipped one
            text = "\n".join(line for line in text.splitlines() if not line.startswith(f"    {key}:"))
    text = text.replace("ood_domains: [elements, us_states]", f"ood_domains: {domains}")
    with pytest.raises(KprefError, match=pattern):
        parse_params(text)


def test_made_up_facts_are_seeded_only_trained_and_never_probed():
    from tasks.params.facts import FictionalRelation
    from tasks.probe import probed_facts
    from tasks.sources.fictional import FICTIONAL_RELATIONS

    assert get_args(FictionalRelation) == tuple(FICTIONAL_RELATIONS)  # params.yaml accepts exactly these
    fp = shipped({"facts": {"sources": {"fictional": {"enabled": True, "per_relation": 30,
                                                      "relations": list(FICTIONAL_RELATIONS)}},
                            "split": {"conflict_sources": ["fictional"]}}}).facts
    facts, relations = collect_facts(fp, seed=0)
    made_up = [f for f in facts if f.source == "fictional"]
    assert {f.split for f in made_up} == {"train"}
    per = Counter(f.relation for f in made_up)
    assert set(per) == set(FICTIONAL_RELATIONS) and set(per.values()) == {30}  # distinct subjects a relation
    assert relations["founder"].say("Acme Inc", "Ada Lovelace") == "Acme Inc was founded by Ada Lovelace."
    # the same seed gives the same world, another seed another one; the real sources are untouched
    assert made_up == [f for f in collect_facts(fp, seed=0)[0] if f.source == "fictional"]
    assert made_up != [f for f in collect_facts(fp, seed=1)[0] if f.source == "fictional"]
    real = {"sources": {"fictional": {"enabled": False}}, "split": {"conflict_sources": []}}
    assert [f for f in facts if f not in made_up] == collect_facts(shipped({"facts": real}).facts, seed=0)[0]
    asked = probed_facts(facts, fp.split.ood_relations, fp.split.conflict_sources)
    assert asked and not [f for f in asked if f.source == "fictional"]


def test_facts_stage_writes_nothing_on_bad_user_file(tmp_path, templates):
    bad = tmp_path / "facts.csv"
    bad.write_text("subject,relation,object\nParis,river_of,\n")
    p = shipped({"facts": {"sources": {"user_facts": {
        "enabled": True, "path": str(bad), "templates": str(templates)}}}})
    with pytest.raises(KprefError, match="facts.csv:2"):
        run(p, tmp_path)
    assert not (tmp_path / "data").exists()
