import pytest

from tasks.facts import collect_facts, run, split_subjects, write_facts
from tasks.schema import KprefError, read_facts, read_relations
from tests.conftest import shipped


def test_sources_cover_several_relations():
    facts, relations = collect_facts(shipped().facts, seed=0)
    rels = {f.relation for f in facts}
    assert {"capital", "currency", "continent", "city_country", "language", "demonym", "subregion",
            "alpha3"} <= rels
    assert {f.split for f in facts} == {"train", "val", "test"}
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


def test_facts_stage_writes_nothing_on_bad_user_file(tmp_path, templates):
    bad = tmp_path / "facts.csv"
    bad.write_text("subject,relation,object\nParis,river_of,\n")
    p = shipped({"facts": {"sources": {"user_facts": {
        "enabled": True, "path": str(bad), "templates": str(templates)}}}})
    with pytest.raises(KprefError, match="facts.csv:2"):
        run(p, tmp_path)
    assert not (tmp_path / "data").exists()
