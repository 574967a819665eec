"""dvc.yaml, params.yaml and the code must describe the same pipeline, and DVC must see every
code change that can change an artifact."""
import ast
import importlib
import importlib.util
from pathlib import Path

import grimp
import pytest
import yaml

from tasks.core import schema
from tasks.core.schema import KprefError
from tasks.params.full import Params
from tasks.params.section import SECTIONS
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


def is_code(path: Path) -> bool:
    """Whether a module can change what a stage does: a package's __init__.py holding only its
    docstring cannot, so dvc.yaml need not list it."""
    if path.name != "__init__.py":
        return True
    body = ast.parse(path.read_text()).body
    return not (len(body) == 1 and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant))


def listed_modules(deps: list, root: Path = ROOT) -> set[str]:
    """The .py files a stage's deps name, a folder of tasks/ standing for every module in it."""
    out = set()
    for d in deps:
        if d.endswith(".py"):
            out.add(d)
        elif d.startswith("tasks/") and (root / d).is_dir():
            out |= {p.relative_to(root).as_posix() for p in (root / d).glob("*.py") if is_code(p)}
    return out


def code_deps(root: Path = ROOT) -> dict[str, tuple[set[str], set[str]]]:
    """stage -> (the module files its command imports, the .py files dvc.yaml's deps name)."""
    dvc = yaml.safe_load((root / "dvc.yaml").read_text())
    graph = grimp.build_graph("tasks")
    out = {}
    for name, st in dvc["stages"].items():
        needed = {module_path(m, root) for m in stage_import_closure(graph, name)}
        out[name] = ({n for n in needed if is_code(root / n)}, listed_modules(st.get("deps", []), root))
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


def test_deps_cover_every_template_a_stage_renders():
    """A template is code too: a stage whose modules name a template lists it (or tasks/templates)."""
    import re

    graph = grimp.build_graph("tasks")
    for name, st in DVC["stages"].items():
        sources = "".join((ROOT / module_path(m)).read_text() for m in stage_import_closure(graph, name))
        for template in sorted(set(re.findall(r"[\w.]+\.j2", sources))):
            path = f"tasks/templates/{template}"
            assert (ROOT / path).exists(), path
            assert {path, "tasks/templates"} & set(st["deps"]), f"dvc.yaml stage {name!r} misses deps {path}"


def test_the_closure_follows_imports_inside_functions():
    graph = grimp.build_graph("tasks")
    # probe imports generate and modeling inside run_probe, so a model loads only when it runs
    assert {"tasks.runtime.generate", "tasks.runtime.modeling", "tasks.core.metrics",
            "tasks.core.schema"} <= stage_import_closure(graph, "probe")
    assert "tasks.train" not in stage_import_closure(graph, "probe")


def test_params_sections_exist():
    fields = [f.alias or n for n, f in Params.model_fields.items()]
    for st in DVC["stages"].values():
        for p in st.get("params", []):
            assert p.split(".")[0] in fields, p
    assert tuple(fields) == SECTIONS


def test_each_stage_reads_the_sections_dvc_tracks_for_it():
    """A stage's `Params` are the sections its dvc.yaml params name: no more (a knob of another
    section would make it stale for nothing), no fewer (a value it reads would change nothing DVC sees)."""
    for name, st in DVC["stages"].items():
        model = importlib.import_module(f"tasks.{name}").Params
        reads = {f.alias or n for n, f in model.model_fields.items()}
        assert reads == {p.split(".")[0] for p in st.get("params", [])}, name


def test_a_stage_never_imports_another_sections_params():
    graph = grimp.build_graph("tasks")
    for stage in ("facts", "probe", "synthesize"):
        assert "tasks.params.train" not in stage_import_closure(graph, stage)
        assert "tasks.params.full" not in stage_import_closure(graph, stage)


def test_artifact_paths_are_declared():
    declared = set()
    for st in DVC["stages"].values():
        for kind in ("deps", "outs", "metrics", "plots"):
            for entry in st.get(kind, []):
                declared.add(next(iter(entry)) if isinstance(entry, dict) else entry)
    for const in ("BASE_DIR", "ADAPTER_DIR", "TUNED_DIR", "FACTS", "RELATIONS", "PROBE", "VALIDATION", "DATA_DOCS",
                  "TRAIN_LIVE", "METRICS", "SUMMARY", "PREDICTIONS", "ADHERENCE_CSV"):
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
