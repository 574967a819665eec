"""dvc.yaml, params.yaml and the code must describe the same pipeline, and DVC must see every
code change that can change an artifact."""
import importlib
import importlib.util
from pathlib import Path

import grimp
import pytest
import yaml

from tasks import schema
from tasks.params import Params
from tasks.schema import KprefError
from tasks.stages import run_stage, stage_names
from tests.conftest import ROOT

DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())


def stage_import_closure(graph: grimp.ImportGraph, stage: str) -> set[str]:
    """Every kpref module `kpref stage <stage>` imports: the door, the stage module and what they
    import, transitively (imports inside functions too), with the packages that hold them."""
    modules = {"tasks.stages", f"tasks.{stage}"}
    for m in list(modules):
        modules |= graph.find_upstream_modules(m)
    return modules | {m.rpartition(".")[0] for m in modules if "." in m}


def module_path(module: str, root: Path = ROOT) -> str:
    return Path(importlib.util.find_spec(module).origin).resolve().relative_to(root).as_posix()


def code_deps(root: Path = ROOT) -> dict[str, tuple[set[str], set[str]]]:
    """stage -> (the module files its command imports, the .py files dvc.yaml lists as its deps)."""
    dvc = yaml.safe_load((root / "dvc.yaml").read_text())
    graph = grimp.build_graph("tasks")
    out = {}
    for name, st in dvc["stages"].items():
        needed = {module_path(m, root) for m in stage_import_closure(graph, name)}
        listed = {d for d in st.get("deps", []) if d.endswith(".py")}
        out[name] = (needed, listed)
    return out


def test_every_stage_is_one_function_in_its_module():
    assert list(DVC["stages"]) == stage_names(ROOT)
    for name, st in DVC["stages"].items():
        assert st["cmd"] == f"kpref stage {name}"
        assert callable(importlib.import_module(f"tasks.{name}").run), name


def test_deps_cover_every_module_a_stage_imports():
    """A stage whose deps miss a module it runs is not rerun when that module changes; one whose
    deps list a module it never runs is rerun for nothing."""
    for name, (needed, listed) in code_deps().items():
        assert not needed - listed, f"dvc.yaml stage {name!r} misses deps {sorted(needed - listed)}"
        assert not listed - needed, f"dvc.yaml stage {name!r} lists modules it never imports {sorted(listed - needed)}"


def test_the_closure_follows_imports_inside_functions():
    graph = grimp.build_graph("tasks")
    # probe imports generate and modeling inside run_probe, so a model loads only when it runs
    assert {"tasks.generate", "tasks.modeling", "tasks.metrics", "tasks.schema"} <= stage_import_closure(graph, "probe")
    assert "tasks.train" not in stage_import_closure(graph, "probe")


def test_params_sections_exist():
    fields = {f.alias or n for n, f in Params.model_fields.items()}
    for st in DVC["stages"].values():
        for p in st.get("params", []):
            assert p.split(".")[0] in fields, p


def test_artifact_paths_are_declared():
    declared = set()
    for st in DVC["stages"].values():
        for kind in ("deps", "outs", "metrics", "plots"):
            for entry in st.get(kind, []):
                declared.add(next(iter(entry)) if isinstance(entry, dict) else entry)
    for const in ("BASE_DIR", "ADAPTER_DIR", "TUNED_DIR", "FACTS", "RELATIONS", "PROBE", "VALIDATION", "DATA_DOCS",
                  "TRAIN_LIVE", "METRICS", "PREDICTIONS", "ADHERENCE_CSV"):
        assert getattr(schema, const) in declared, const
    for split in schema.SPLITS:
        assert f"{schema.DATA_DIR}/{split}.jsonl" in declared, split


def test_an_unknown_stage_or_bad_params_fail_before_any_work(tmp_path):
    (tmp_path / "dvc.yaml").write_text((ROOT / "dvc.yaml").read_text())
    with pytest.raises(KprefError, match=r"unknown stage 'schema'"):
        run_stage("schema", ROOT / "params.yaml", tmp_path)
    (tmp_path / "params.yaml").write_text("base:\n  seed: -1\n")
    with pytest.raises(KprefError, match=r"params.yaml:2: key 'base.seed'"):
        run_stage("facts", "params.yaml", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dvc.yaml", "params.yaml"]
