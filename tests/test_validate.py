import json

import pytest

from tasks.core.schema import KprefError
from tasks.sources.relations import BUILTIN_RELATIONS
from tasks.synthesize import synthesize, write_splits
from tasks.validate import GateParams, run_validation
from tests.conftest import SMALL_FACTS, shipped

P = shipped({"facts": SMALL_FACTS,
             "synthesize": {"n_train": 180, "n_val": 27, "n_test_per_setting": 3, "n_ood_per_setting": 2,
                            "n_ood_domain_per_setting": 2}})


@pytest.fixture
def world(small_world, facts_params):
    facts, relations = small_world
    gate = GateParams.from_params(P, relations)
    beliefs = {f.key: f.object for f in facts}  # a model that knows every fact
    return synthesize(facts, relations, beliefs, P.synthesize, facts_params, seed=0), gate


def _run(tmp_path, splits, gate, tokenizer_dir=None):
    write_splits(splits, tmp_path / "data")
    return run_validation(tmp_path / "data", tmp_path / "reports/validation.json", tmp_path / "reports/data_docs",
                          gate, tokenizer_dir, BUILTIN_RELATIONS)


def _failed(tmp_path, splits, gate, tokenizer_dir=None):
    with pytest.raises(KprefError) as e:
        _run(tmp_path, splits, gate, tokenizer_dir)
    summary = json.loads((tmp_path / "reports/validation.json").read_text())
    failed = {(r["expectation"], r["column"]) for v in summary["results"].values() for r in v if not r["success"]}
    return str(e.value), failed


def test_clean_data_passes_and_writes_docs(tmp_path, world, tiny_model_dir):
    splits, gate = world
    gate.max_length = 512
    s = _run(tmp_path, splits, gate, tiny_model_dir)
    assert s["success"] and s["n_failed"] == 0 and s["n_expectations"] > 30
    assert (tmp_path / "reports/data_docs/index.html").exists()


def test_shipped_params_synthesize_data_the_gate_passes(tmp_path):
    """The shipped params.yaml as it is (every source, n_train 2000, the tuned mix), not the code's
    idea of it: the synthesized splits pass the gate. The probe is stood in for by a model that
    answers every other fact right, so memory settings have beliefs and abstentions alike."""
    from tasks.facts import collect_facts

    p = shipped()
    facts, relations = collect_facts(p.facts, p.base.seed)
    beliefs = {f.key: f.object for f in facts[::2]}
    splits = synthesize(facts, relations, beliefs, p.synthesize, p.facts, p.base.seed)
    assert len(splits["train"]) == p.synthesize.n_train
    s = _run(tmp_path, splits, GateParams.from_params(p, relations))
    assert s["success"] and s["rows"]["test"] == p.synthesize.n_test_per_setting * len(splits_settings(splits))


def splits_settings(splits) -> set[str]:
    return {r["setting"] for r in splits["test"]}


def test_swapped_target_fails_on_hierarchy(tmp_path, world):
    splits, gate = world
    row = next(r for r in splits["train"] if r["setting"] == "instr_vs_ctx")
    row["target"] = row["answers"]["context"]  # the context answer where the instruction should win
    msg, failed = _failed(tmp_path, splits, gate)
    assert ("expect_column_values_to_be_in_set", "target_is_source_answer") in failed
    assert row["id"] in msg


def test_leaked_test_subject_fails(tmp_path, world):
    splits, gate = world
    splits["train"][0]["subject"] = splits["test"][0]["subject"]
    msg, failed = _failed(tmp_path, splits, gate)
    assert ("expect_column_values_to_not_be_in_set", "subject") in failed
    assert splits["train"][0]["id"] in msg


def test_leaked_ood_relation_and_phrasing_fail(tmp_path, world):
    splits, gate = world
    splits["train"][0]["relation"] = "subregion"
    splits["train"][1]["question_template"] = gate.held_out_templates[0]
    splits["train"][2]["assumption_style"] = gate.held_out_styles[0]
    _, failed = _failed(tmp_path, splits, gate)
    assert {("expect_column_values_to_not_be_in_set", c) for c in
            ("relation", "question_template", "assumption_style")} <= failed


def test_held_out_domain_leaks_fail(tmp_path, world):
    splits, gate = world
    domain = splits["test_ood_domain"]
    splits["train"][0]["subject"] = domain[0]["subject"]
    splits["train"][1]["relation"] = domain[0]["relation"]
    splits["train"][2]["question_template"] = domain[0]["question_template"]
    ctx = next(r for r in splits["train"][3:] if r["contexts"])
    ctx["contexts"] = [*ctx["contexts"], "The chemical symbol for Boron is B."]  # a held-out domain's relation
    msg, failed = _failed(tmp_path, splits, gate)
    assert {("expect_column_values_to_not_be_in_set", c) for c in ("subject", "relation", "question_template")} <= failed
    assert ("expect_column_values_to_be_in_set", "no_held_out_text") in failed
    assert "held-out-domain relations never occur" in msg and "held-out-domain wordings never occur" in msg
    assert ctx["id"] in msg


def test_held_out_statements_in_context_fail(tmp_path, world):
    splits, gate = world
    ctx_rows = [r for r in splits["train"] if r["contexts"]]
    test_subject = splits["test"][0]["subject"]
    ctx_rows[0]["contexts"] = [*ctx_rows[0]["contexts"], "Peru is part of South America."]  # held-out relation
    ctx_rows[1]["contexts"] = [*ctx_rows[1]["contexts"], f"The capital of Greater {test_subject} is Nowhere."]
    ctx_rows[2]["contexts"] = [*ctx_rows[2]["contexts"], f"The capital of {test_subject} is Somewhere."]
    instr = next(r for r in splits["train"] if r["setting"] == "instr_only")
    instr["instruction"] = f"Suppose the capital of {test_subject} is Elsewhere."
    msg, failed = _failed(tmp_path, splits, gate)
    assert ("expect_column_values_to_be_in_set", "no_held_out_text") in failed
    line = next(x for x in msg.splitlines() if "no_held_out_text" in x)
    assert all(r["id"] in line for r in (ctx_rows[0], ctx_rows[2], instr))
    assert "3 unexpected" in line  # "Greater <subject>" is another subject: no leak


def test_unbalanced_mix_fails(tmp_path, world):
    splits, gate = world
    moved = [r for r in splits["train"] if r["setting"] == "closed_book"][:15]
    for r in moved:
        r["setting"] = "ctx_support"  # still a valid record, but the mix is off
        r["expected_source"] = "context"
        r["target"] = r["answers"]["context"] = r["world_answer"]
        r["contexts"] = [r["completion"]] if r["world_answer"] in r["completion"] else [f"It is {r['world_answer']}."]
        r["completion"] = r["contexts"][0]
    msg, failed = _failed(tmp_path, splits, gate)
    assert ("expect_column_values_to_be_in_set", "within_tolerance") in failed
    assert "train:closed_book" in msg


def test_bad_dpo_pair_and_duplicate_prompt_fail(tmp_path, world):
    splits, gate = world
    pair = next(r for r in splits["train"] if r["error_type"] == "instruction_neglect")
    pair["rejected"] = pair["completion"]
    other = next(r for r in splits["train"] if r["setting"] == "closed_book")
    dup = dict(other, id=other["id"] + "-dup")
    splits["train"].append(dup)
    msg, failed = _failed(tmp_path, splits, gate)
    assert ("expect_column_values_to_be_in_set", "rejected_matches_error_type") in failed
    assert ("expect_compound_columns_to_be_unique", "split,prompt_key") in failed
    assert pair["id"] in msg


def test_too_long_prompts_fail(tmp_path, world, tiny_model_dir):
    splits, gate = world
    gate.max_length = 40
    _, failed = _failed(tmp_path, splits, gate, tiny_model_dir)
    assert ("expect_column_values_to_be_in_set", "within_token_limit") in failed


def test_duplicate_id_and_bad_setting_fail(tmp_path, world):
    splits, gate = world
    splits["train"][1]["id"] = splits["train"][0]["id"]
    splits["val"][0]["setting"] = "made_up"
    _, failed = _failed(tmp_path, splits, gate)
    assert ("expect_column_values_to_be_unique", "id") in failed
    assert ("expect_column_values_to_be_in_set", "setting") in failed


def test_missing_field_is_named(tmp_path, world):
    splits, gate = world
    for r in splits["train"]:
        del r["completion"]
    write_splits(splits, tmp_path / "data")
    with pytest.raises(KprefError, match=r"train.jsonl: records lack field\(s\) \['completion'\]"):
        run_validation(tmp_path / "data", tmp_path / "v.json", tmp_path / "docs", gate)
