import pytest

from tasks.core.schema import KprefError
from tasks.runtime.modeling import (
    cpu_has_fast_bf16,
    load_model,
    load_tokenizer,
    pick_device,
)


def test_pick_device_precision():
    import torch

    if torch.cuda.is_available():
        pytest.skip("CPU rules only")
    assert pick_device("cpu", "fp32").dtype == torch.float32
    assert pick_device("auto", "bf16").dtype == torch.bfloat16
    auto = pick_device("auto", "auto")
    assert auto.name == "cpu" and auto.dtype == (torch.bfloat16 if cpu_has_fast_bf16() else torch.float32)
    with pytest.raises(KprefError, match="'cuda' requested"):
        pick_device("cuda")


def test_load_model_pads_left_for_generation_and_tokenizer_keeps_its_side(tiny_model_dir):
    model, tok = load_model(tiny_model_dir, precision="fp32")
    assert tok.padding_side == "left" and tok.pad_token is not None and not model.training
    assert load_tokenizer(tiny_model_dir).padding_side == "right"


def test_checkpoint_without_safetensors_is_refused(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(KprefError, match=r"no \*.safetensors"):
        load_model(tmp_path)
