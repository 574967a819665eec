import pytest
import yaml

from tasks.core.schema import KprefError
from tasks.params.full import Params, knobs, load_params, parse_params
from tests.conftest import ROOT, shipped_raw


def _text(overrides: dict | None = None, drop: tuple[str, ...] = ()) -> str:
    """The shipped params.yaml as text, with `overrides` merged in and the dotted keys in `drop` removed."""
    raw = shipped_raw(overrides)
    for key in drop:
        *parents, last = key.split(".")
        node = raw
        for k in parents:
            node = node[k]
        del node[last]
    return yaml.safe_dump(raw, sort_keys=False)


def _line_of(text: str, dotted: str) -> int:
    """The 1-based line of a dotted key: each part searched for, at its depth, below the one before."""
    lines, n = text.splitlines(), 0
    for depth, part in enumerate(dotted.split(".")):
        n = next(i for i in range(n, len(lines)) if lines[i].startswith("  " * depth + part + ":")) + 1
    return n


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
    text = _text({"train": {"learning_rat": 0.1}})
    with pytest.raises(KprefError) as e:
        parse_params(text, "params.yaml")
    msg = str(e.value)
    assert "train.learning_rat" in msg and f"params.yaml:{_line_of(text, 'train.learning_rat')}" in msg
    assert "unknown key" in msg


def test_missing_key_names_key_and_its_section():
    text = _text(drop=("train.lora.top_layers",))
    with pytest.raises(KprefError) as e:
        parse_params(text, "params.yaml")
    msg = str(e.value)
    assert "missing key 'train.lora.top_layers'" in msg and f"params.yaml:{_line_of(text, 'train.lora')}" in msg
    assert msg.count("params.yaml:") == 1  # one problem, one line


def test_wrong_type_names_key_and_expectation():
    text = _text({"train": {"batch_size": "eight"}})
    with pytest.raises(KprefError) as e:
        parse_params(text, "p.yaml")
    msg = str(e.value)
    assert "train.batch_size" in msg and f"p.yaml:{_line_of(text, 'train.batch_size')}" in msg
    assert "integer" in msg and "'eight'" in msg


def test_out_of_range_value():
    with pytest.raises(KprefError, match=r"facts.split.test_subjects.*less than 1"):
        parse_params(_text({"facts": {"split": {"test_subjects": 1.5}}}))


def test_unknown_setting_in_mix():
    with pytest.raises(KprefError, match=r"synthesize.mix.*closed_bok"):
        parse_params(_text({"synthesize": {"mix": {"closed_bok": 1.0}}}))


def test_invalid_yaml_names_line():
    with pytest.raises(KprefError, match=r"params.yaml:4: not valid YAML"):
        parse_params("base:\n  seed: 1\n  x: [1, 2\nfoo: bar\n", "params.yaml")


def test_enabled_source_needs_its_file():
    with pytest.raises(KprefError, match=r"facts.sources.mquake.*needs 'path'"):
        parse_params(_text({"facts": {"sources": {"mquake": {"enabled": True}}}}))


def test_params_yaml_is_the_only_home_of_a_value():
    """No field has a code default: a value that is not in params.yaml does not exist."""
    def fields(model):
        for f in model.model_fields.values():
            yield f
            if isinstance(f.annotation, type) and issubclass(f.annotation, __import__("pydantic").BaseModel):
                yield from fields(f.annotation)

    assert all(f.is_required() for f in fields(Params))


def test_every_knob_is_described():
    listed = list(knobs())
    assert len(listed) == len(set(k for k, _, _ in listed)) > 60
    assert all(description for _, _, description in listed)
    by_key = {k: (kind, d) for k, kind, d in listed}
    assert by_key["train.lora.r"][0] == "int (>= 1)"
    assert by_key["validate.balance_tolerance"][0] == "float (>= 0, < 1)"


def test_missing_file():
    with pytest.raises(KprefError, match="not found"):
        load_params("/nonexistent/params.yaml")


def test_a_stage_reads_its_own_sections_and_names_an_unknown_one():
    from tasks.facts import Params as FactsStage

    raw = shipped_raw()
    raw["train"]["learning_rat"] = 0.1  # another stage's typo: not this stage's to report
    p = load_stage(yaml.safe_dump(raw, sort_keys=False), FactsStage)
    assert p.base.seed == raw["base"]["seed"] and not hasattr(p, "train")
    raw["trian"] = raw.pop("train")
    text = yaml.safe_dump(raw, sort_keys=False)
    with pytest.raises(KprefError, match=rf"params.yaml:{_line_of(text, 'trian')}: unknown section 'trian'"):
        load_stage(text, FactsStage)
    with pytest.raises(KprefError, match=r"missing key 'facts'"):
        load_stage("base:\n  seed: 1\n", FactsStage)


def load_stage(text: str, model):
    from tasks.params.section import parse_params as parse_section

    return parse_section(text, model)
