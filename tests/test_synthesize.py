import hashlib
import json
from collections import Counter

import pandas as pd
import pytest

from tasks.core.atomic import write_jsonl
from tasks.core.schema import ASSUMPTION_STYLES, ERROR_TYPES, SETTINGS, KprefError
from tasks.synthesize import allocate, synthesize, write_splits
from tasks.validation.rows import CHECK_COLUMNS, derive_checks
from tests.conftest import SMALL_FACTS, shipped

# the shipped knobs, small
P = shipped({"synthesize": {"n_train": 180, "n_val": 27, "n_test_per_setting": 4, "n_ood_per_setting": 3,
                            "n_ood_domain_per_setting": 3}}).synthesize


def _run(small_world, facts_params, p=P, seed=0, beliefs=None):
    facts, relations = small_world
    beliefs = {f.key: f"I think {f.object}." for f in facts} if beliefs is None else beliefs
    return synthesize(facts, relations, beliefs, p, facts_params, seed)


def _tests_of(splits: dict) -> dict:
    """The test splits: a knob that shapes training only must leave them as they were."""
    return {k: v for k, v in splits.items() if k.startswith("test")}


def _assert_gate_passes(rows: list[dict]) -> None:
    """Every row passes the quality gate's per-row checks (tasks/validate.py); a failure names the check and rows."""
    df = derive_checks(pd.DataFrame(rows))
    for col in CHECK_COLUMNS:
        if col in df:
            assert df[col].all(), (col, df.loc[~df[col], "id"].tolist()[:3])


def test_allocate_is_exact_and_proportional():
    c = allocate(10, {"a": 1, "b": 1, "c": 1})
    assert sum(c.values()) == 10 and max(c.values()) - min(c.values()) <= 1
    assert allocate(7, {"a": 0, "b": 1}) == {"a": 0, "b": 7}


def test_same_params_same_bytes(small_world, facts_params, tmp_path):
    a, b = _run(small_world, facts_params, seed=3), _run(small_world, facts_params, seed=3)
    write_splits(a, tmp_path / "a")
    write_splits(b, tmp_path / "b")
    for split in a:
        assert (tmp_path / "a" / f"{split}.jsonl").read_bytes() == (tmp_path / "b" / f"{split}.jsonl").read_bytes()
    digest = lambda s: hashlib.sha256(json.dumps(s, sort_keys=True).encode()).hexdigest()  # noqa: E731
    assert digest(a) != digest(_run(small_world, facts_params, seed=4))


def test_every_setting_and_hierarchy_consistency(small_world, facts_params):
    s = _run(small_world, facts_params)
    assert len(s["train"]) == 180 and len(s["val"]) == 27
    assert {r["setting"] for r in s["train"]} == set(SETTINGS)
    assert {r["setting"] for r in s["test"]} == set(SETTINGS)
    _assert_gate_passes([r for rows in s.values() for r in rows])
    required = {"id", "setting", "subject", "relation", "question", "instruction", "contexts", "target",
                "expected_source", "answers", "rejected", "error_type"}
    assert required <= set(s["train"][0])


def test_held_out_subjects_relations_and_phrasings(small_world, facts_params):
    facts, relations = small_world
    s = _run(small_world, facts_params)
    train = s["train"] + s["val"]
    test_subjects = {r["subject"] for k in ("test", "test_ood_relation", "test_ood_phrasing") for r in s[k]}
    assert not {r["subject"] for r in train} & test_subjects
    assert {r["relation"] for r in s["test_ood_relation"]} == {"subregion"}
    assert "subregion" not in {r["relation"] for r in train}
    held_q = {q[-1] for q in (r.questions for r in relations.values())}
    assert not {r["question_template"] for r in train} & held_q
    assert {r["question_template"] for r in s["test_ood_phrasing"]} <= held_q
    styles = {r["assumption_style"] for r in s["test_ood_phrasing"] if r["assumption_style"] is not None}
    assert styles == {len(ASSUMPTION_STYLES) - 1}
    assert len(ASSUMPTION_STYLES) - 1 not in {r["assumption_style"] for r in train}


def test_held_out_domain_is_its_own_split(small_world, facts_params):
    facts, relations = small_world
    s = _run(small_world, facts_params)
    domain = {f.subject for f in facts if f.split == "test_ood_domain"}
    rows = s["test_ood_domain"]
    assert rows and {r["subject"] for r in rows} <= domain
    assert {r["setting"] for r in rows} == set(SETTINGS) - {"multi_hop"}  # no city hop into a state or element
    assert len(rows) == P.n_ood_domain_per_setting * (len(SETTINGS) - 1)
    assert {r["source"] for r in rows} == {"elements", "us_states"}
    # distractor passages stay in the domain too: nothing of it is in any other split
    others = [r for k, v in s.items() if k != "test_ood_domain" for r in v]
    assert not any(subj in " ".join([r["question"], *r["contexts"], r["instruction"] or ""])
                   for r in others for subj in ("Texas", "Oxygen"))
    assert not {r["relation"] for r in others} & {r["relation"] for r in rows}


def test_replay_sources_only_in_training_memory_settings():
    from tasks.facts import collect_facts

    fp = shipped({"facts": {**SMALL_FACTS, "sources": {**SMALL_FACTS["sources"], "languages": {"enabled": True}},
                            "split": {**SMALL_FACTS["split"], "replay_sources": ["languages"]}}}).facts
    facts, relations = collect_facts(fp, seed=0)
    beliefs = {f.key: f.object for f in facts}
    s = synthesize(facts, relations, beliefs, P, fp, seed=0)
    replayed = [r for rows in s.values() for r in rows if r["relation"] == "language_code"]
    assert replayed and {r["split"] for r in replayed} <= {"train", "val"}
    assert {r["setting"] for r in replayed} == {"closed_book", "ctx_irrelevant"}


def _made_up_params(**split):
    """The small world's facts params with the made-up source on as a conflict source, and `split` on top."""
    return shipped({"facts": {**SMALL_FACTS, "sources": {**SMALL_FACTS["sources"], "fictional": {
        "enabled": True, "per_relation": 12}}, "split": {**SMALL_FACTS["split"], "conflict_sources": ["fictional"],
                                                         **split}}}).facts


def test_made_up_facts_only_where_the_prompt_answers():
    from tasks.facts import collect_facts

    fp = _made_up_params()
    world = collect_facts(fp, seed=0)
    s = _run(world, fp)
    made_up = [r for rows in s.values() for r in rows if r["source"] == "fictional"]
    assert made_up and {r["split"] for r in made_up} == {"train"}  # never tested, never in val
    settings = {r["setting"] for r in made_up}
    assert not settings & {"closed_book", "ctx_irrelevant"}  # no memory setting: no model knows them
    # in multi-hop only as the long chains, whose every hop the prompt states, or one of their edits asked
    assert all(("+citizenship+" in r["relation"] or "+" not in r["relation"]) and r["expected_source"] != "parametric"
               for r in made_up if r["setting"] == "multi_hop")
    assert {"ctx_counterfactual", "instr_only", "instr_vs_ctx"} <= settings
    # a counterfactual object is another of the relation's own: a person for a founder
    people = {f.object for f in world[0] if f.relation in ("founder", "ceo", "spouse", "author")}
    assert all(r["target"] in people for r in made_up if r["relation"] == "founder")


def test_variety(small_world, facts_params):
    train = _run(small_world, facts_params)["train"]
    assert len({r["assumption_style"] for r in train if r["assumption_style"] is not None}) >= 6
    assert {r["context_format"] for r in train if r["context_format"]} == {"sentence", "paragraph", "passages"}
    top = Counter(r["relation"] for r in train if r["setting"] != "multi_hop").most_common(1)[0][0]
    assert len({r["question_template"] for r in train if r["relation"] == top}) == 5  # 6 phrasings, 1 held out
    assert {r["source"] for r in train} >= {"countries", "cities", "countryinfo", "pycountry"}
    # counterfactuals come from the same relation's objects
    facts, _ = small_world
    objects = {}
    for f in facts:
        objects.setdefault(f.relation, set()).add(f.object)
    for r in train:
        if r["setting"] in ("ctx_counterfactual", "instr_only"):
            assert r["target"] in objects[r["relation"]] and r["target"] != r["world_answer"]


def test_multi_hop_composes(small_world, facts_params):
    facts, _ = small_world
    by = {(f.relation, f.subject): f.object for f in facts}
    rows = [r for r in _run(small_world, facts_params)["train"]
            if r["setting"] == "multi_hop" and r["relation"].startswith("city_country+")]  # no long chain
    assert rows
    for r in rows:
        country = by[("city_country", r["subject"])]
        r2 = r["relation"].split("+")[1]
        assert r["world_answer"] == by[(r2, country)]
        assert r["target"] != r["world_answer"]
        if r["bridge"] != country:  # the city moved: the answer is the new country's
            assert r["target"] == by[(r2, r["bridge"])]


def test_long_chains_walk_made_up_hops_to_a_countrys_edited_x(small_world, facts_params):
    facts, relations = small_world
    by = {(f.relation, f.subject): f.object for f in facts}
    one, long = _run(small_world, facts_params), _run(small_world, facts_params, P.model_copy(
        update={"long_chains": 1.0, "chain_hop_questions": 0.0}))
    rows = [r for r in long["train"] if r["setting"] == "multi_hop"]
    assert rows and {r["expected_source"] for r in rows} == {"instruction", "context"}
    assert {len(r["relation"].split("+")) for r in rows} == {3, 4, 5}  # 0, 1 or 2 hops between start and country
    for r in rows:
        *made_up, citizenship, last = r["relation"].split("+")
        assert citizenship == "citizenship" and r["source"] == "fictional"
        assert r["world_answer"] == by[(last, r["bridge"])] and r["target"] != r["world_answer"]
        assert r["completion"] == relations[last].say(r["bridge"], r["target"])
        assert r["question"].startswith(f"What is the {last if last != 'language' else 'main language'} of the "
                                        "country of citizenship of ") and r["question"].endswith(f"{r['subject']}?")
        # every hop is in the prompt: the answer is the last edit's, reached through the whole chain
        text = r["instruction"] or " ".join(r["contexts"])
        assert r["bridge"] in text and r["target"] in text and len(text.split(". ")) >= len(made_up) + 2
    assert not any(r["setting"] == "multi_hop" and r["source"] == "fictional" for r in long["val"])
    assert _tests_of(long) == _tests_of(one)
    _assert_gate_passes(rows)
    with pytest.raises(KprefError, match="synthesize.long_chains needs the made-up relations"):
        _run(([f for f in facts if f.source != "fictional"], relations), facts_params,
             P.model_copy(update={"long_chains": 0.5}))


def test_a_chain_hop_question_asks_one_edit_with_the_whole_chain_stated(small_world, facts_params):
    facts, relations = small_world
    by = {(f.relation, f.subject): f.object for f in facts}
    whole = _run(small_world, facts_params, P.model_copy(update={"long_chains": 1.0, "chain_hop_questions": 0.0}))
    hops = _run(small_world, facts_params, P.model_copy(update={"long_chains": 1.0, "chain_hop_questions": 1.0}))
    rows = [r for r in hops["train"] if r["setting"] == "multi_hop"]
    assert rows and all("+" not in r["relation"] for r in rows)
    assert {r["relation"] for r in rows} & {"author", "founder", "ceo"}  # the chain's first edit is asked
    assert {r["relation"] for r in rows} & {"capital", "continent", "currency", "language"}  # and its last
    for r in rows:
        rel = relations[r["relation"]]
        # the question is the relation's own, about the edit's subject; the answer is that edit's
        # object, not the end of the chain, and the DPO pair rejects the fact the edit changed
        assert r["question"] in {q.format(s=r["subject"]) for q in rel.questions}
        assert r["completion"] == rel.say(r["subject"], r["target"]) and r["bridge"] == r["subject"]
        assert r["world_answer"] == by[(r["relation"], r["subject"])] != r["target"]
        text = r["instruction"] or " ".join(r["contexts"])
        assert r["target"] in text and len(text.split(". ")) >= 3  # the other edits are stated too
    assert _tests_of(hops) == _tests_of(whole)
    _assert_gate_passes(rows)


def test_dpo_pairs_typed_and_capped(small_world, facts_params):
    train = _run(small_world, facts_params)["train"]
    types = Counter(r["error_type"] for r in train if r["error_type"])
    assert set(types) == set(ERROR_TYPES)
    assert max(types.values()) <= 1.5 * min(types.values())
    for r in train:
        if r["error_type"]:
            assert r["rejected"] != r["completion"]


def test_parametric_targets(small_world, facts_params):
    facts, relations = small_world
    known = {f.key for f in facts[::2]}
    # a wrong answer of the relation's type (another subject's object) counts as a belief
    other = {f.key: next(g.object for g in facts if g.relation == f.relation and g.object != f.object) for f in facts}
    beliefs = {f.key: f.object if f.key in known else other[f.key] for f in facts[::2] + facts[1::4]}
    key = lambda r: f"{r['relation']}::{r['subject']}"  # noqa: E731
    s = _run(small_world, facts_params, beliefs=beliefs)
    memory = [r for r in s["train"] + s["val"] if r["setting"] in ("closed_book", "ctx_irrelevant")]
    assert memory and all(key(r) in beliefs for r in memory)  # only facts the model answered
    assert all(r["target"] == beliefs[key(r)] and r["answers"]["parametric"] == r["target"] for r in memory)
    wrong = [r for r in memory if r["target"] != r["world_answer"]]
    assert wrong and all(r["completion"] == relations[r["relation"]].say(r["subject"], beliefs[key(r)]) for r in wrong)
    cb_test = next(r for r in s["test"] if r["setting"] == "closed_book")
    assert cb_test["target"] == cb_test["world_answer"]
    # the irrelevant-context examples ask the closed-book facts again, with a distractor
    cb = {key(r) for r in memory if r["setting"] == "closed_book"}
    irr = [key(r) for r in memory if r["setting"] == "ctx_irrelevant"]
    assert sum(k in cb for k in irr) >= 0.8 * len(irr)
    with pytest.raises(KprefError, match="closed-book answer from the probe"):
        _run(small_world, facts_params, beliefs={})
    w = _run(small_world, facts_params, P.model_copy(update={"parametric_target": "world"}), beliefs={})
    assert all(r["target"] == r["world_answer"] for r in w["train"] if r["setting"] == "closed_book")


def test_beliefs_naming_no_object_of_the_type_count_as_none(small_world, facts_params):
    facts, relations = small_world
    # a wrong but real answer (another subject's object) and a made-up one, alternately
    beliefs = {f.key: (facts[(i + 1) % len(facts)].object if i % 2 else "Atlantis") for i, f in enumerate(facts)
               if f.relation == facts[(i + 1) % len(facts)].relation}
    key = lambda r: f"{r['relation']}::{r['subject']}"  # noqa: E731
    s = _run(small_world, facts_params, beliefs=beliefs)
    memory = [r for r in s["train"] + s["val"] if r["setting"] in ("closed_book", "ctx_irrelevant")]
    assert memory and not any(r["target"] == "Atlantis" for r in memory)  # made up: counts as no answer
    assert not any(beliefs.get(key(r)) == "Atlantis" for r in memory)  # and so is left out of memory
    assert any(r["target"] == beliefs[key(r)] != r["world_answer"] for r in memory)


def test_malformed_probe_file_names_line_and_writes_nothing(tmp_path, small_world):
    from dataclasses import asdict

    from tasks import synthesize as stage
    from tasks.core.atomic import write_json

    facts, relations = small_world
    (tmp_path / "data").mkdir()
    write_jsonl(tmp_path / "data/facts.jsonl", (asdict(f) for f in facts))
    write_json(tmp_path / "data/relations.json", {n: r.to_dict() for n, r in relations.items()})
    (tmp_path / "data/probe.jsonl").write_text('{"key": "a", "belief": "b"}\n{"key": \n')
    with pytest.raises(KprefError, match=r"probe.jsonl:2: not valid JSON"):
        stage.run(shipped(), tmp_path)
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["facts.jsonl", "probe.jsonl", "relations.json"]



def _strong(train: float, test: float):
    return P.model_copy(update={"strong_prior": P.strong_prior.model_copy(update={"train": train, "test": test})})


def test_conflicts_draw_their_share_from_each_relations_most_certain_facts(small_world, facts_params):
    from tasks.core.schema import FACT_CONFLICTS

    facts, relations = small_world
    beliefs = {f.key: f"I think {f.object}." for f in facts}
    # as the probe measures: every fact but the made-up ones
    certainty = {f.key: round((i * 37 % 101) / 101, 4) for i, f in enumerate(facts) if f.source != "fictional"}
    key = lambda r: f"{r['relation']}::{r['subject']}"  # noqa: E731
    s = synthesize(facts, relations, beliefs, _strong(0.5, 0.5), facts_params, 0, certainty)
    for rows in s.values():  # every example carries the certainty of the fact it asks; multi-hop none
        assert all(r["base_certainty"] == (None if r["setting"] == "multi_hop" else certainty.get(key(r)))
                   for r in rows)
    # the stratum: each relation's most certain fifth of the split's facts
    top = set()
    for rel in {f.relation for f in facts}:
        ranked = sorted((f for f in facts if f.relation == rel and f.split == "train" and f.key in certainty),
                        key=lambda f: -certainty[f.key])
        top |= {f.key for f in ranked[: max(1, -(-len(ranked) // 5))]}
    conflicts = [r for r in s["train"] if r["setting"] in FACT_CONFLICTS and r["source"] != "fictional"]
    share = sum(key(r) in top for r in conflicts) / len(conflicts)
    assert share >= 0.5  # half drawn from it, and the uniform half lands there a fifth of the time
    assert {r["relation"] for r in conflicts if key(r) in top} == {r["relation"] for r in conflicts}  # every form
    uniform = synthesize(facts, relations, beliefs, _strong(0.0, 0.0), facts_params, 0, certainty)
    base = [r for r in uniform["train"] if r["setting"] in FACT_CONFLICTS and r["source"] != "fictional"]
    assert sum(key(r) in top for r in base) / len(base) < share - 0.15
    # no share: the facts a uniform draw asks, with or without certainty to carry
    blind = synthesize(facts, relations, beliefs, _strong(0.0, 0.0), facts_params, 0)
    assert [{**r, "base_certainty": None} for rows in uniform.values() for r in rows] == \
        [r for rows in blind.values() for r in rows]
    # the train share shapes training only: the test splits stay as they were
    assert _tests_of(synthesize(facts, relations, beliefs, _strong(0.0, 0.5), facts_params, 0, certainty)) == \
        _tests_of(s)
