import json

import pytest

from tasks.evaluate import _same_answer, evaluate_items, evaluate_stage
from tasks.modeling import load_model
from tasks.params import SynthesizeParams, TrainParams
from tasks.schema import EvalItem
from tasks.synthesize import synthesize, write_splits
from tasks.train import train_sft


@pytest.fixture(scope="module")
def trained(tiny_model_dir, small_facts, tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    s = synthesize(small_facts, {}, SynthesizeParams(n_train=24, n_val=8, n_test_per_setting=2), seed=0)
    write_splits(s, root / "data")
    p = TrainParams.model_validate(
        {"max_steps": 3, "batch_size": 4, "logging_steps": 1, "lora": {"r": 4, "alpha": 8, "top_layers": 1}}
    )
    out = train_sft(p, 0, tiny_model_dir, root / "data", root / "adapter", root / "tuned", root / "live")
    return root, out


def test_sft_writes_adapter_merged_model_and_curves(trained):
    root, out = trained
    assert out["steps"] == 3 and out["device"] == "cpu"
    assert (root / "adapter" / "adapter_model.safetensors").exists()
    cfg = json.loads((root / "adapter" / "adapter_config.json").read_text())
    assert all(".layers.1." in m for m in cfg["target_modules"]), "top_layers=1 adapts only the last layer"
    model, _ = load_model(root / "tuned")
    assert not hasattr(model, "peft_config")
    loss = (root / "live" / "plots" / "metrics" / "loss.tsv").read_text().splitlines()
    assert loss[0].split("\t")[:2] == ["step", "loss"] and len(loss) == 1 + 3  # one row per logged step
    assert (root / "live" / "plots" / "metrics" / "eval" / "loss.tsv").exists()


def test_training_is_seeded(trained, tiny_model_dir, tmp_path):
    root, _ = trained
    from safetensors.torch import load_file

    p = TrainParams.model_validate(
        {"max_steps": 3, "batch_size": 4, "logging_steps": 1, "lora": {"r": 4, "alpha": 8, "top_layers": 1}}
    )
    train_sft(p, 0, tiny_model_dir, root / "data", tmp_path / "adapter", tmp_path / "tuned", tmp_path / "live")
    a = load_file(root / "adapter" / "adapter_model.safetensors")
    b = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


def test_evaluate_stage_metrics(trained, tiny_model_dir):
    root, _ = trained
    m = evaluate_stage(root / "data" / "test.jsonl", {"base": tiny_model_dir, "tuned": root / "tuned"}, 8, 4,
                       root / "reports/metrics.json", root / "reports/predictions", root / "reports/adherence.csv")
    for name in ("base", "tuned"):
        assert 0 <= m[name]["adherence"] <= 1
        assert set(m[name]["adherence_by_setting"]) >= {"closed_book", "ctx_counterfactual", "instr_vs_ctx"}
        assert {"closed_book_accuracy", "irrelevant_robustness", "source_confusion"} <= set(m[name])
        preds = (root / "reports/predictions" / f"{name}.jsonl").read_text().splitlines()
        assert len(preds) == 16
    assert "closed_book_retention" in m["delta"]
    assert (root / "reports/adherence.csv").read_text().startswith("setting,model,adherence\n")


def _irrelevant_item():
    return EvalItem("a", "What is the capital of Peru?", None, ["The capital of Chile is Santiago."], ["Lima"],
                    "parametric", "ctx_irrelevant",
                    {"instruction": None, "context": None, "parametric": "Lima", "world": "Lima"})


def test_same_answer_compares_named_entities():
    it = _irrelevant_item()
    assert _same_answer("The capital of Peru is Lima.", "Lima, of course", it)
    assert not _same_answer("It is Santiago.", "Lima", it)
    assert _same_answer("I do not know", "I do not know.", it)
    assert not _same_answer("I do not know", "No idea", it)


def test_irrelevant_robustness_uses_closed_book_answer(tiny_model_dir):
    model, tok = load_model(tiny_model_dir)
    ev = evaluate_items(model, tok, [_irrelevant_item()], batch_size=2, max_new_tokens=3)
    p = ev.predictions[0]
    same = _same_answer(p["prediction"], p["closed_book_prediction"], _irrelevant_item())
    assert ev.metrics["irrelevant_robustness"] == float(same)
    assert ev.metrics["adherence_by_setting"] == {"ctx_irrelevant": float(p["correct"])}
