"""The whole pipeline through real DVC in a temp git repo, then through the Prefect flow."""
import json

import pytest
import yaml

from tests.tiny_repo import make_repo
from tests.tiny_repo import sh as _sh

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def repo(tiny_model_dir, tmp_path_factory):
    return make_repo(tmp_path_factory.mktemp("kpref-repo"), tiny_model_dir, reproduce=True, benchmark=True)


def test_dvc_repro_builds_every_artifact(repo):
    for path in ["models/base/model.safetensors", "data/facts.jsonl", "data/probe.jsonl", "data/train.jsonl",
                 "data/test.jsonl", "reports/validation.json", "reports/data_docs/index.html",
                 "models/adapter/adapter_model.safetensors", "models/tuned/model.safetensors", "models/tuned/README.md",
                 "reports/train/plots/metrics/loss.tsv", "reports/predictions/tuned_test.jsonl",
                 "reports/report.md", "reports/report.html", "reports/figures/adherence_test.png",
                 "data/test_ood_relation.jsonl", "data/test_ood_phrasing.jsonl", "data/test_ood_domain.jsonl",
                 "data/relations.json"]:
        assert (repo / path).exists(), path
    m = json.loads((repo / "reports/metrics.json").read_text())
    assert set(m) == {"test", "test_ood_relation", "test_ood_phrasing", "test_ood_domain", "mquake", "ifqa", "mrqa"}
    # the benchmark file in inputs/benchmarks/ is evaluated; the absent ones are reported, not faked
    assert m["mquake"]["tuned"]["n"] == 11 and "case_by_setting" in m["mquake"]["delta"]
    assert m["ifqa"] == {"skipped": "file not found: inputs/benchmarks/ifqa.json"}
    assert "closed_book_retention_ci95" in m["test_ood_domain"]["delta"]
    assert {"base", "tuned", "delta"} <= set(m["test"])
    assert set(m["test"]["tuned"]["adherence_by_setting"]) >= {"closed_book", "ctx_counterfactual", "ctx_irrelevant",
                                                               "instr_only", "instr_vs_ctx", "multi_hop"}
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert set(lock["stages"]) == set(yaml.safe_load((repo / "dvc.yaml").read_text())["stages"])
    html = (repo / "reports/report.html").read_text()
    assert "data:image/png;base64," in html and "<img" in html
    assert html.index("Headlines") < html.index("Held-out subjects")  # retention above the per-split detail
    assert "Benchmark mquake" in html and "Benchmarks skipped" in html
    assert "Data and pipelines are up to date" in _sh(["dvc", "status"], repo).stdout
    shown = _sh(["dvc", "metrics", "show", "--json"], repo).stdout
    # the headline figures a person compares, not metrics.json's every interval bound
    assert "reports/summary.json" in shown and "retention" in shown and "closed_book" in shown
    assert "reports/metrics.json" not in shown and "_ci95" not in shown


@pytest.mark.parametrize("module, stale", [
    # a train knob added or described: facts, probe and synthesize stay as they were
    ("tasks/params/train.py", {"validate", "train"}),
    ("tasks/core/metrics.py", {"facts", "probe", "synthesize", "validate", "evaluate_base", "evaluate", "report"}),
    ("tasks/core/schema.py", {"base_model", "facts", "probe", "synthesize", "validate", "train", "evaluate_base", "evaluate",
                          "report"}),
])
def test_editing_a_module_marks_every_stage_that_imports_it_stale(repo, module, stale):
    import json as _json

    path = repo / module
    original = path.read_text()
    try:
        path.write_text(original + "\n# an edit\n")
        changed = _json.loads(_sh(["dvc", "status", "--json"], repo).stdout)
        assert {name.split(":")[-1] for name in changed} == stale
    finally:
        path.write_text(original)
    assert "Data and pipelines are up to date" in _sh(["dvc", "status"], repo).stdout


def test_a_benchmark_file_dropped_into_inputs_reruns_only_the_evaluation(repo):
    from tests.benchmark_files import write_ifqa

    path = write_ifqa(repo / "inputs" / "benchmarks" / "ifqa.json")
    try:
        changed = json.loads(_sh(["dvc", "status", "--json"], repo).stdout)
        assert {name.split(":")[-1] for name in changed} == {"evaluate_base", "evaluate"}
    finally:
        path.unlink()
    assert "Data and pipelines are up to date" in _sh(["dvc", "status"], repo).stdout


def test_prefect_flow_defers_to_dvc(repo, prefect_harness):
    from flows.pipeline import kpref_pipeline

    lock_before = (repo / "dvc.lock").read_text()
    summary = kpref_pipeline(root=str(repo))
    assert [s["ran"] for s in summary["stages"]] == [False] * 9
    assert (repo / "dvc.lock").read_text() == lock_before

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["evaluate"]["max_new_tokens"] = 3
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    summary = kpref_pipeline(root=str(repo))
    ran = {s["stage"] for s in summary["stages"] if s["ran"]}
    # both halves of the evaluation must rerun; report only if evaluate's outputs changed (DVC compares hashes)
    assert {"evaluate_base", "evaluate"} <= ran <= {"evaluate_base", "evaluate", "report"}
    assert "Data and pipelines are up to date" in _sh(["dvc", "status"], repo).stdout


def test_kpref_run_cli_reports_up_to_date(repo, prefect_harness):
    from typer.testing import CliRunner

    from flows.cli import app

    r = CliRunner().invoke(app, ["run", "--root", str(repo)])
    assert r.exit_code == 0, r.output
    assert r.output.count("up to date") == 9


def test_a_recipe_change_reruns_the_tuned_models_half_of_the_evaluation_only(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["train"]["learning_rate"] *= 2
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _sh(["dvc", "repro"], repo).stdout
    assert "Running stage 'train'" in out and "Running stage 'evaluate'" in out
    assert "Running stage 'evaluate_base'" not in out and "Stage 'evaluate_base' didn't change" in out
    assert "Data and pipelines are up to date" in _sh(["dvc", "status"], repo).stdout


def test_bad_params_stop_dvc_before_work(repo):
    params = (repo / "params.yaml").read_text()
    try:
        (repo / "params.yaml").write_text(params.replace("n_train:", "n_trian:"))
        proc = _sh(["dvc", "repro", "synthesize"], repo, check=False)
        assert proc.returncode != 0
        assert "synthesize.n_trian" in proc.stdout + proc.stderr
    finally:
        (repo / "params.yaml").write_text(params)


def test_the_report_renders_in_a_real_headless_chromium(repo, tmp_path):
    """The self-contained HTML opened as a person would: every section there, every figure
    decoded and drawn (coloured pixels of the plots in the screenshot, not just <img> tags)."""
    import re
    import shutil

    from PIL import Image

    browser = shutil.which("chromium")
    assert browser, "Debian's chromium is needed for the report test: `make test` installs it (make browser)"
    report = (repo / "reports" / "report.html").resolve()
    args = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-color-profile=srgb",
            f"--user-data-dir={tmp_path / 'profile'}"]
    dom = _sh([*args, "--dump-dom", report.as_uri()], tmp_path).stdout
    headings = re.findall(r"<h2>(.*?)</h2>", dom)
    for section in ("Headlines", "Held-out subjects", "Benchmark mquake", "Benchmarks skipped", "Source attribution",
                    "Conflict detection", "Training", "Data quality gate", "Failures, in full"):
        assert any(h.startswith(section) for h in headings), (section, headings)
    n_images = report.read_text().count('src="data:image/png;base64,')
    assert n_images >= 8 and dom.count("<img") == n_images
    shot = tmp_path / "report.png"
    _sh([*args, "--window-size=1280,16000", f"--screenshot={shot}", report.as_uri()], tmp_path)
    pixels = Image.open(shot).convert("RGB")
    assert pixels.size == (1280, 16000)
    coloured = sum(1 for r, g, b in pixels.getdata() if max(r, g, b) - min(r, g, b) > 80)
    assert coloured > 20_000 * n_images // 8, coloured  # the plots' bars and boxes, drawn


def test_the_report_shows_the_change_against_the_last_committed_metrics(repo):
    assert "No committed metrics to compare with" in (repo / "reports/report.md").read_text()
    _sh(["git", "add", "dvc.lock"], repo)
    _sh(["git", "commit", "-qm", "a run's lock"], repo)
    _sh(["dvc", "repro", "--force", "report"], repo)
    md = (repo / "reports/report.md").read_text()
    change = md[md.index("## Change since the last commit"):md.index("(`test`)")]
    assert "| held-out subjects | adherence, every setting |" in change and "+0.0 pts |" in change  # no change
    assert "| benchmark mquake | adherence, every setting |" in change
