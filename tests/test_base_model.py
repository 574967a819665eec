import pytest

from tasks.base_model import build_base_model, classify
from tasks.core.schema import KprefError
from tasks.runtime.modeling import load_model
from tests.conftest import shipped


def ModelParams(base: str = "smollm2-135m-instruct"):  # noqa: N802  (reads as the params model it builds)
    return shipped({"model": {"base": base}}).model


def test_classify():
    assert classify("smollm2-135m-instruct") == "packaged"
    assert classify("HuggingFaceTB/SmolLM2-135M-Instruct") == "hub"
    with pytest.raises(KprefError, match="unknown base model 'not a model!'"):
        classify("not a model!")


def test_local_checkpoint_is_copied(tiny_model_dir, tmp_path):
    out = build_base_model(ModelParams(base=str(tiny_model_dir)), tmp_path / "base")
    model, tok = load_model(out)
    assert model.config.num_hidden_layers == 2 and tok.padding_side == "left"


def test_local_dir_without_safetensors_is_refused(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text("{}")
    (tmp_path / "ckpt" / "pytorch_model.bin").write_bytes(b"\0")
    with pytest.raises(KprefError, match="no \\*.safetensors"):
        build_base_model(ModelParams(base=str(tmp_path / "ckpt")), tmp_path / "base")
    assert not (tmp_path / "base").exists()


def test_hub_id_offline_fails_clearly_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(KprefError, match="could not load hub model 'kpref-test/does-not-exist'"):
        build_base_model(ModelParams(base="kpref-test/does-not-exist"), tmp_path / "base")
    assert not (tmp_path / "base").exists()
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_packaged_smollm2_converts_to_safetensors(tmp_path):
    out = build_base_model(ModelParams(), tmp_path / "base")
    assert (out / "model.safetensors").exists()
    model, tok = load_model(out)
    assert model.config.num_hidden_layers == 30
    assert "quantization_config" not in model.config.to_dict()
