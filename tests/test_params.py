import pytest
import yaml

from tasks.errors import KprefError
from tasks.params import Params, load_params, parse_params
from tests.conftest import ROOT


def _field_paths(model_cls, prefix=()):
    for name, f in model_cls.model_fields.items():
        key = f.alias or name
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, __import__("pydantic").BaseModel):
            yield from _field_paths(ann, prefix + (key,))
        else:
            yield prefix + (key,)


def test_project_params_load_and_spell_out_every_knob():
    p = load_params(ROOT / "params.yaml")
    assert p.model.base == "smollm2-135m-instruct"
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    for path in _field_paths(Params):
        node = raw
        for k in path:
            assert k in node, f"params.yaml lacks {'.'.join(path)}: every knob must live there"
            node = node[k]


def test_misspelt_key_names_key_and_line():
    text = "base:\n  seed: 1\ntrain:\n  learning_rat: 0.1\n"
    with pytest.raises(KprefError) as e:
        parse_params(text, "params.yaml")
    msg = str(e.value)
    assert "train.learning_rat" in msg and "params.yaml:4" in msg and "unknown key" in msg


def test_wrong_type_names_key_and_expectation():
    with pytest.raises(KprefError) as e:
        parse_params("train:\n  batch_size: eight\n", "p.yaml")
    msg = str(e.value)
    assert "train.batch_size" in msg and "p.yaml:2" in msg and "integer" in msg and "'eight'" in msg


def test_out_of_range_value():
    with pytest.raises(KprefError, match=r"facts.split.test_subjects.*less than 1"):
        parse_params("facts:\n  split:\n    test_subjects: 1.5\n")


def test_unknown_setting_in_mix():
    with pytest.raises(KprefError, match=r"synthesize.mix.*closed_bok"):
        parse_params("synthesize:\n  mix: {closed_bok: 1.0}\n")


def test_invalid_yaml_names_line():
    with pytest.raises(KprefError, match=r"params.yaml:4: not valid YAML"):
        parse_params("base:\n  seed: 1\n  x: [1, 2\nfoo: bar\n", "params.yaml")


def test_enabled_source_needs_its_file():
    with pytest.raises(KprefError, match=r"facts.sources.mquake.*needs 'path'"):
        parse_params("facts:\n  sources:\n    mquake:\n      enabled: true\n")


def test_missing_file():
    with pytest.raises(KprefError, match="not found"):
        load_params("/nonexistent/params.yaml")
