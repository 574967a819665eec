"""The benchmark and GPU-check scripts import, and use only public names of tasks/ (their runs are `make bench`)."""
import ast
import importlib.util

import pytest

from tasks.relations import BUILTIN_RELATIONS
from tests.conftest import ROOT

SCRIPTS = sorted((ROOT / "benchmarks").glob("*.py")) + sorted((ROOT / "scripts").glob("*.py"))


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_script_imports_public_names_only(path):
    text = path.read_text()
    assert "sys.path" not in text, "scripts run with kpref installed; no path patching"
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tasks"):
            private = [a.name for a in node.names if a.name.startswith("_")]
            assert not private, f"{path.name}:{node.lineno} imports private {private} from {node.module}"
            module = importlib.import_module(node.module)
            missing = [a.name for a in node.names if not hasattr(module, a.name)
                       and importlib.util.find_spec(f"{node.module}.{a.name}") is None]
            assert not missing, f"{path.name}:{node.lineno}: {node.module} has no {missing}"
    _load(path)  # top-level imports resolve


def _load(path):
    """The script as a module, as `python path` would run it but for `main()`."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_dir(root, name: str, base: dict, tuned: dict):
    from safetensors.torch import save_file

    run = root / name
    for where, tensors in (("models/base", base), ("models/tuned", tuned)):
        (run / where).mkdir(parents=True)
        save_file(tensors, str(run / where / "model.safetensors"))
    (run / "models/tuned/config.json").write_text("{}")
    (run / "data").mkdir()
    (run / "data/test.jsonl").write_text(f'{{"run": "{name}"}}\n')
    return run


def test_wise_ft_scales_one_runs_change_and_averages_a_soups(tmp_path):
    import torch
    from safetensors.torch import load_file

    wise_ft = _load(ROOT / "benchmarks" / "wise_ft.py")
    base = {"w": torch.tensor([1.0, 2.0]), "b": torch.tensor([5.0])}
    a = _run_dir(tmp_path, "a", base, {"w": torch.tensor([3.0, 2.0]), "b": torch.tensor([5.0])})
    b = _run_dir(tmp_path, "b", base, {"w": torch.tensor([1.0, 6.0]), "b": torch.tensor([5.0])})

    assert wise_ft.interpolate([a], 0.5, tmp_path / "half") == 1  # only w changed
    assert torch.equal(load_file(tmp_path / "half/models/tuned/model.safetensors")["w"], torch.tensor([2.0, 2.0]))

    assert wise_ft.interpolate([a, b], 1.0, tmp_path / "soup") == 1
    soup = load_file(tmp_path / "soup/models/tuned/model.safetensors")
    assert torch.equal(soup["w"], torch.tensor([2.0, 4.0])) and torch.equal(soup["b"], base["b"])
    assert (tmp_path / "soup/models/tuned/config.json").exists()
    assert (tmp_path / "soup/data/test.jsonl").read_text() == '{"run": "a"}\n'  # the first run's questions

    other = _run_dir(tmp_path, "other", {"w": torch.tensor([0.0, 2.0]), "b": torch.tensor([5.0])}, base)
    with pytest.raises(SystemExit, match="a soup needs one base model"):
        wise_ft.interpolate([a, other], 1.0, tmp_path / "bad")


def test_the_random_control_changes_each_tensor_as_much_as_training_did_in_a_random_low_rank_direction(tmp_path):
    import torch
    from safetensors.torch import load_file

    wise_ft = _load(ROOT / "benchmarks" / "wise_ft.py")
    gen = torch.Generator().manual_seed(0)
    base = {"w": torch.randn(12, 10, generator=gen), "b": torch.randn(4, generator=gen), "e": torch.ones(3)}
    tuned = {"w": base["w"] + torch.randn(12, 10, generator=gen), "b": base["b"] + 1.0, "e": torch.ones(3)}
    run = _run_dir(tmp_path, "a", base, tuned)
    for seed in (0, 1):
        assert wise_ft.interpolate([run], 1.0, tmp_path / f"r{seed}", random_rank=2, seed=seed) == 2
    r0, r1 = (load_file(tmp_path / f"r{s}/models/tuned/model.safetensors") for s in (0, 1))
    for k in ("w", "b"):
        d = r0[k] - base[k]
        assert d.norm().item() == pytest.approx((tuned[k] - base[k]).norm().item(), rel=1e-4)
        assert not torch.allclose(r0[k], r1[k])
    assert torch.linalg.matrix_rank(r0["w"] - base["w"]) == 2 and torch.equal(r0["e"], base["e"])
    assert not torch.allclose((r0["w"] - base["w"]), tuned["w"] - base["w"], atol=0.5)  # not training's direction


def test_self_distillation_asks_only_untrained_relations_of_train_subjects_and_keeps_whole_sentences():
    import random

    from tasks.schema import Fact

    sd = _load(ROOT / "benchmarks" / "self_distill.py")
    facts = [Fact("France", "capital", "Paris", "city", "countries", split="train"),
             Fact("Peru", "capital", "Lima", "city", "countries", split="test")]
    asked = sd.pool(facts, 10_000, random.Random(0))
    countries = {f.subject for f in asked if f.relation in sd.COUNTRY_RELATIONS}
    assert countries == {"France"}  # a held-out subject never reaches training
    assert {f.relation for f in asked} == {*sd.COUNTRY_RELATIONS, "http_status", "unit_symbol"}
    assert [f.key for f in sd.pool(facts, 5, random.Random(0))] == [f.key for f in asked[:5]]
    rng, phrasings = random.Random(0), BUILTIN_RELATIONS[asked[0].relation].questions
    drawn = {sd.question(asked[0], rng) for _ in range(100)}
    assert drawn == {q.format(s=asked[0].subject) for q in phrasings[:-1]}  # never the held-out phrasing
    template = {"setting": "closed_book", "expected_source": "parametric", "id": "x", "contexts": ["kept?"]}
    rows = sd.memory_rows([(asked[0], "Q1?", " It is .fr. And then it was cut"), (asked[1], "Q2?", "no sentence")],
                          template)
    assert len(rows) == 1 and rows[0]["completion"] == rows[0]["target"] == "It is .fr."
    assert rows[0]["setting"] == "closed_book" and rows[0]["contexts"] == [] and rows[0]["question"] == "Q1?"
