"""The model card written beside the tuned weights."""
import yaml

from tasks.training.card import model_card

DATA = {"train": {"n": 2000, "md5": "a" * 32}, "val": {"n": 100, "md5": "b" * 32}}


def _meta(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_the_embedded_default_is_named_by_its_hub_checkpoint_and_licence():
    card = model_card("smollm2-135m-instruct", "sft", 42, DATA, {"learning_rate": 0.0008}, {"train_loss": 0.09})
    meta = _meta(card)
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct" and meta["license"] == "apache-2.0"
    assert meta["tags"] == ["kpref", "knowledge-conflict", "lora", "sft"]
    assert "`data/train.jsonl`: 2000 examples, md5 `" + "a" * 32 in card and "learning_rate: 0.0008" in card
    assert "| train_loss | 0.09 |" in card and "**Seed:** 42" in card


def test_a_hub_base_is_the_base_model_and_both_phases_are_tagged():
    meta = _meta(model_card("Qwen/Qwen2.5-0.5B-Instruct", "sft+dpo", 0, DATA, {}, {}))
    assert meta["base_model"] == "Qwen/Qwen2.5-0.5B-Instruct" and "license" not in meta
    assert meta["tags"][-2:] == ["sft", "dpo"]
