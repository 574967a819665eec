"""The shape a newcomer can read: small modules and functions, and every module in a layer.

The layers themselves are import-linter contracts in pyproject.toml (`lint-imports`, run by
`make test`); this module checks what import-linter does not: sizes, and that no module is
left out of the contract.
"""
import ast
import tomllib

import pytest
import yaml

from tests.conftest import ROOT

MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60
SOURCES = sorted((ROOT / "tasks").rglob("*.py")) + sorted((ROOT / "flows").glob("*.py"))


def _definitions(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_modules_and_functions_stay_small(path):
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path.name}: split it by what its parts do"
    for node in _definitions(ast.parse(text)):
        n = node.end_lineno - node.lineno + 1
        assert n <= MAX_FUNCTION_LINES, f"{path.name}:{node.lineno} {node.name} is {n} lines"


def test_every_module_and_package_sits_in_a_layer():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    layers = next(c for c in config["contracts"] if c["type"] == "layers")["layers"]
    named = {m.strip() for layer in layers for m in layer.replace(":", "|").split("|")}
    top = {f"{p.parent.name}.{p.stem}" for p in SOURCES
           if p.stem != "__init__" and p.parent in (ROOT / "tasks", ROOT / "flows")}
    packages = {f"tasks.{p.name}" for p in (ROOT / "tasks").iterdir() if (p / "__init__.py").exists()}
    assert top | packages == named


def test_the_top_of_tasks_holds_the_stages_and_the_door_only():
    """A newcomer tells stages from helpers by `ls tasks/`: every helper sits in a concern's package."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    modules = {p.stem for p in (ROOT / "tasks").glob("*.py") if p.stem != "__init__"}
    assert modules == set(dvc["stages"]) | {"stages"}
