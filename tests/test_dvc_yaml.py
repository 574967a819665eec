"""dvc.yaml, params.yaml and tasks/stages.py must describe the same pipeline."""
import yaml

from tasks import stages
from tasks.params import Params
from tests.conftest import ROOT

DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())


def test_every_stage_has_one_implementation():
    assert list(DVC["stages"]) == list(stages.STAGES)
    for name, st in DVC["stages"].items():
        assert st["cmd"] == f"kpref stage {name}"


def test_params_sections_exist():
    fields = {f.alias or n for n, f in Params.model_fields.items()}
    for st in DVC["stages"].values():
        for p in st.get("params", []):
            assert p.split(".")[0] in fields, p


def test_stage_paths_are_declared():
    declared = set()
    for st in DVC["stages"].values():
        for kind in ("deps", "outs", "metrics", "plots"):
            for entry in st.get(kind, []):
                declared.add(next(iter(entry)) if isinstance(entry, dict) else entry)
    for const in ("BASE_DIR", "ADAPTER_DIR", "TUNED_DIR", "FACTS", "PROBE", "VALIDATION", "DATA_DOCS", "TRAIN_LIVE",
                  "METRICS", "PREDICTIONS", "ADHERENCE_CSV"):
        assert getattr(stages, const) in declared, const
    for dep in {d for st in DVC["stages"].values() for d in st.get("deps", [])}:
        if dep.startswith("tasks/"):
            assert (ROOT / dep).exists(), dep
