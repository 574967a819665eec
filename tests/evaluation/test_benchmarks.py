"""The public benchmarks' loaders, on small files written in each authors' format."""
import json
import subprocess
from collections import Counter

import pytest

from tasks.core.schema import KprefError
from tasks.evaluation.benchmarks import (
    answer_type,
    load_benchmark,
    read_benchmarks,
    split_premise,
)
from tasks.evaluation.scoring import case_flags, paired_deltas, summarize
from tasks.params.evaluate import BenchmarkFile
from tests.benchmark_files import (
    IFQA,
    MQUAKE,
    mrqa_records,
    write_ifqa,
    write_mquake,
    write_mrqa,
)
from tests.conftest import shipped


def test_mquake_edits_as_instruction_and_as_context(tmp_path):
    items = load_benchmark("mquake", write_mquake(tmp_path / "cf.json"))
    counts = Counter(it.setting for it in items)
    # 3 multi-hop questions and one question per edit, once per carrier; closed-book: unedited hops, each once
    assert counts == {"multi_hop_instr": 6, "multi_hop_ctx": 6, "instr_only": 3, "ctx_counterfactual": 3,
                      "closed_book": 2}
    hop = next(it for it in items if it.id == "mquake/11/multi_hop_instr/0")
    assert hop.instruction == ("Assume that Song of Rivers was written by Bo Ek. "
                               "Assume that Bo Ek is a citizen of Peru.")
    assert hop.contexts == [] and hop.answers == ["Peru", "Republic of Peru"] and hop.group == "11/multi_hop_instr"
    assert hop.expected_source == "instruction" and hop.source_answers == {"instruction": "Peru", "world": "Sweden"}
    ctx = next(it for it in items if it.id == "mquake/11/multi_hop_ctx/0")
    assert ctx.instruction is None and ctx.expected_source == "context"
    assert ctx.contexts == ["Song of Rivers was written by Bo Ek.", "Bo Ek is a citizen of Peru."]
    edit = next(it for it in items if it.id == "mquake/11/ctx_counterfactual/0")
    assert edit.question == "Who wrote Song of Rivers?" and edit.answers == ["Bo Ek", "B. Ek"]
    assert edit.source_answers == {"context": "Bo Ek", "world": "Ana Lind"}
    closed = [it for it in items if it.setting == "closed_book"]
    # an edited hop is not closed-book retention; a hop two cases share is asked once
    assert [it.question for it in closed] == ["What is the country of citizenship of Ana Lind?",
                                              "What is the capital of Sweden?"]
    assert all(it.instruction is None and not it.contexts for it in closed)
    assert len(load_benchmark("mquake", tmp_path / "cf.json", max_items=1)) == 11


def test_mquake_authors_rule_counts_a_case_once(tmp_path):
    items = [it for it in load_benchmark("mquake", write_mquake(tmp_path / "cf.json")) if it.group]
    # case 11 solved by its second paraphrase only, case 12 by none
    preds = [{"id": it.id, "setting": it.setting, "group": it.group, "correct": it.id.endswith("11/multi_hop_instr/1"),
              "em": 0.0, "f1": 0.0} for it in items]
    flags = case_flags(preds)
    assert flags["multi_hop_instr"] == {"11/multi_hop_instr": True, "12/multi_hop_instr": False}
    m = summarize(items, preds)
    assert m["case_adherence_by_setting"] == {"multi_hop_ctx": 0.0, "multi_hop_instr": 0.5}
    assert m["adherence_by_setting"]["multi_hop_instr"] == round(1 / 6, 4)
    tuned = [dict(p, correct=True) for p in preds]
    d = paired_deltas(preds, tuned)
    assert d["case_by_setting"]["multi_hop_instr"]["delta"] == 0.5
    assert d["by_setting"]["multi_hop_ctx"]["delta"] == 1.0 and d["by_setting"]["multi_hop_ctx"]["significant"]


@pytest.mark.parametrize("case, field", [
    ({"new_answer": None}, "case 1 (case_id 12): field 'new_answer' must be str"),
    ({"questions": "one question"}, "case 1 (case_id 12): field 'questions' must be list"),
    ({"requested_rewrite": [{"prompt": "The capital of is", "subject": "X", "question": "?",
                             "target_true": {"str": "A"}, "target_new": {"str": "B"}}]},
     "case 1 (case_id 12): requested_rewrite[0]: field 'prompt' lacks the subject placeholder"),
    ({"single_hops": [{"question": "Who?"}]}, "case 1 (case_id 12): single_hops[0]: missing field 'answer'"),
])
def test_mquake_malformed_case_names_file_record_and_field(tmp_path, case, field):
    cases = json.loads(json.dumps(MQUAKE))
    cases[1].update(case)
    path = write_mquake(tmp_path / "bad.json", cases)
    with pytest.raises(KprefError, match=f"^{path}: " + field.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]").replace("?", r"\?")):
        load_benchmark("mquake", path)


def test_mquake_on_the_shipped_format_of_a_real_file(tmp_path):
    """Every field the authors' README lists, as in the real files (`orig` and ids unused)."""
    items = load_benchmark("mquake", write_mquake(tmp_path / "cf.json"), max_items=2)
    assert len({it.id for it in items}) == len(items)


def test_ifqa_premise_becomes_the_instruction(tmp_path):
    items = load_benchmark("ifqa", write_ifqa(tmp_path / "dev.json"))
    assert [it.setting for it in items] == ["instr_vs_ctx", "instr_only"] * 3
    first = items[0]
    assert first.instruction == "Suppose the river Ama flowed north instead of south."
    assert first.question == "Which sea would it reach?" and first.answers == ["Cold Sea"]
    assert first.contexts == IFQA[0]["context"] and items[1].contexts == []
    assert all(it.expected_source == "instruction" for it in items)
    # a comma inside the premise is not its end; a trailing if-clause is a premise too
    assert split_premise(IFQA[1]["question"]) == (
        "Suppose the bridge had been built ten years later, and opened a year after that.",
        "In which year would it have opened?")
    assert split_premise(IFQA[2]["question"]) == ("Suppose it had kept its first name.",
                                                   "What would the town be called?")
    assert split_premise("Who won the race?") == (None, "Who won the race?")


def test_ifqa_malformed_record(tmp_path):
    bad = json.loads(json.dumps(IFQA))
    bad[2]["answers"] = []
    path = tmp_path / "dev.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(KprefError, match=r"dev.json: record 2 \(idx 2\): field 'answers' must be a non-empty list"):
        load_benchmark("ifqa", path)


@pytest.mark.parametrize("name", ["dev.jsonl.gz", "dev.jsonl"])
def test_mrqa_original_counterfactual_and_irrelevant_passages(tmp_path, name):
    items = load_benchmark("mrqa", write_mrqa(tmp_path / name))
    by_id = {it.id: it for it in items}
    assert Counter(it.setting for it in items) == {"ctx_support": 4, "ctx_counterfactual": 4, "ctx_irrelevant": 4}
    orig = by_id["mrqa/q0/ctx_support"]
    assert orig.contexts[0].startswith("Lake Vira\nLake Vira lies in Tarnland.")  # MRQA's markup dropped
    cf = by_id["mrqa/q0/ctx_counterfactual"]
    sub = cf.answers[0]
    # every span replaced by another answer of the same type from the file
    assert "Tarnland" not in cf.contexts[0] and sub in cf.contexts[0] and answer_type(sub) == answer_type("Tarnland")
    assert cf.source_answers == {"context": sub, "world": "Tarnland"} and cf.expected_source == "context"
    year = by_id["mrqa/q1/ctx_counterfactual"]
    assert year.answers == ["1887"] and "1921" not in year.contexts[0]
    irr = by_id["mrqa/q0/ctx_irrelevant"]
    assert irr.expected_source == "parametric" and irr.answers == ["Tarnland"]
    assert irr.contexts[0] != orig.contexts[0] and "Tarnland" not in irr.contexts[0]
    assert load_benchmark("mrqa", tmp_path / name) == items  # the same file, the same items
    assert len(load_benchmark("mrqa", tmp_path / name, max_items=2)) == 6


def test_mrqa_substitutes_only_within_a_type(tmp_path):
    recs = mrqa_records()[:2]  # one name-typed answer alone: nothing to swap it with
    items = load_benchmark("mrqa", write_mrqa(tmp_path / "one.jsonl", recs))
    assert [it.setting for it in items] == ["ctx_support"]


def test_mrqa_bad_span_names_line_and_field(tmp_path):
    recs = mrqa_records()
    recs[2]["qas"][0]["detected_answers"][0]["char_spans"] = [[5, 900]]
    path = write_mrqa(tmp_path / "dev.jsonl", recs)
    with pytest.raises(KprefError, match=r"dev.jsonl:3: qas\[0\]: detected_answers\[0\]: field 'char_spans'"):
        load_benchmark("mrqa", path)


def test_read_benchmarks_skips_absent_and_malformed_files_and_reads_the_rest(tmp_path):
    write_mquake(tmp_path / "mquake.json")
    (tmp_path / "ifqa.json").write_text('{"not": "a list"}')
    files = {"mquake": BenchmarkFile(format="mquake", path="mquake.json", max_items=1),
             "ifqa": BenchmarkFile(format="ifqa", path="ifqa.json", max_items=5),
             "mrqa": BenchmarkFile(format="mrqa", path="absent.jsonl.gz", max_items=5)}
    sets, skipped = read_benchmarks(files, tmp_path)
    assert list(sets) == ["mquake"] and len(sets["mquake"]) == 11
    assert skipped == {"ifqa": f"not read: {tmp_path / 'ifqa.json'}: expected a JSON list of IfQA questions, got dict",
                       "mrqa": "file not found: absent.jsonl.gz"}


def test_benchmark_names_may_not_shadow_a_split():
    with pytest.raises(Exception, match="taken by the synthesized splits"):
        shipped({"evaluate": {"benchmarks": {"test": {"format": "ifqa", "path": "x.json", "max_items": 1}}}})
    assert set(shipped().evaluate.benchmarks) == {"mquake", "ifqa", "mrqa"}


def test_kpref_evaluate_a_benchmark_file(tiny_model_dir, tmp_path):
    data = write_mquake(tmp_path / "cf.json")
    proc = subprocess.run(["kpref", "evaluate", "--model", str(tiny_model_dir), "--benchmark", "mquake", "--data",
                           str(data), "--max-items", "1", "--out", str(tmp_path / "out"), "--max-new-tokens", "2"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert m["n"] == 11 and set(m["case_adherence_by_setting"]) == {"multi_hop_instr", "multi_hop_ctx"}
    assert m["adherence_ci95"][0] <= m["adherence"] <= m["adherence_ci95"][1]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"case_id": 1}]))
    proc = subprocess.run(["kpref", "evaluate", "--model", str(tiny_model_dir), "--benchmark", "mquake", "--data",
                           str(bad), "--out", str(tmp_path / "out2")], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "case 0 (case_id 1): missing field 'requested_rewrite'" in proc.stderr.replace("\n", "")
    assert not (tmp_path / "out2").exists()
