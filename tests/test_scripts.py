"""The benchmark and GPU-check scripts import, and use only public names of tasks/ (their runs are `make bench`)."""
import ast
import importlib.util

import pytest

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
    """The script as a module, as `python path` would run it but for `main()`: its own folder
    first on the path, where its sibling modules are (benchmarks/side_by_side.py)."""
    import sys

    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module

