"""Stage report: reports/report.md and a self-contained reports/report.html with plots.

    reads: reports/metrics.json, reports/validation.json, reports/train, reports/predictions
    writes: reports/report.md, reports/report.html, reports/figures/
"""
from __future__ import annotations

import base64
import json
from pathlib import Path

import jinja2

from tasks.core.atomic import atomic_path, write_text
from tasks.core.metrics import metric_changes
from tasks.core.schema import (
    DVC_LOCK,
    FIGURES,
    METRICS,
    NOT_MODELS,
    PREDICTIONS,
    REPORTS,
    TEST_SPLITS,
    TRAIN_LIVE,
    VALIDATION,
)
from tasks.params.section import StageParams
from tasks.reporting.figures import (
    plot_adherence,
    plot_confidence_gain,
    plot_confusion,
    plot_loss,
    plot_prior_strength,
)
from tasks.reporting.words import (
    change_rows,
    headlines,
    metric_rows,
    paired,
    points,
    prior_rows,
    setting_rows,
    split_title,
    summary,
)


class Params(StageParams):
    """The sections of params.yaml this stage reads: none (it reads the evaluation's outputs)."""


def run(p: Params, root: Path) -> None:
    build_report(root / METRICS, root / VALIDATION, root / TRAIN_LIVE, root / PREDICTIONS, root / REPORTS,
                 root / FIGURES, previous=committed_metrics(root))


def committed_metrics(root: Path) -> dict | None:
    """reports/metrics.json as the last commit's dvc.lock pins it, read from the DVC cache: what
    `dvc metrics diff` compares this run with. None where there is no such commit, lock entry or
    cached file (a first run, a fresh clone that has not pulled)."""
    import subprocess

    import yaml

    shown = subprocess.run(["git", "show", f"HEAD:{DVC_LOCK}"], cwd=root, capture_output=True, text=True)
    if shown.returncode != 0:
        return None
    outs = (yaml.safe_load(shown.stdout) or {}).get("stages", {}).get("evaluate", {}).get("outs", [])
    md5 = next((o.get("md5") for o in outs if o.get("path") == METRICS), None)
    if not md5:
        return None
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        cached = Path(repo.cache.local.path) / md5[:2] / md5[2:]
    return json.loads(cached.read_text()) if cached.exists() else None


_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("tasks", "templates"), autoescape=jinja2.select_autoescape(["html"]),
    trim_blocks=True, lstrip_blocks=True,
)


def failures(pred_dir: Path, name: str = "test", n: int = 2) -> list[dict]:
    """The tuned model's first `n` wrong answers per setting of `name`, with what it was asked."""
    path = pred_dir / f"tuned_{name}.jsonl"
    out, seen = [], {}
    for line in path.read_text().splitlines() if path.exists() else []:
        r = json.loads(line)
        if not r["correct"] and "question" in r and seen.get(r["setting"], 0) < n:
            seen[r["setting"]] = seen.get(r["setting"], 0) + 1
            out.append(r)
    return sorted(out, key=lambda r: r["setting"])


def _split_order(split: str) -> tuple[int, str]:
    return (TEST_SPLITS.index(split) if split in TEST_SPLITS else len(TEST_SPLITS), split)


def build_report(metrics_path: str | Path, validation_path: str | Path, live_dir: str | Path,
                 predictions_dir: str | Path, out_dir: str | Path, figures_dir: str | Path,
                 previous: dict | None = None) -> dict[str, Path]:
    metrics = json.loads(Path(metrics_path).read_text())
    validation = json.loads(Path(validation_path).read_text()) if Path(validation_path).exists() else None
    # the synthesized splits in their order, then the benchmarks by name
    splits = sorted((s for s in metrics if metrics[s] and "skipped" not in metrics[s]), key=_split_order)
    figs: dict[str, bytes | None] = {
        f"adherence_{s}": plot_adherence(metrics[s], f"Adherence per setting: {split_title(s)}") for s in splits
    }
    figs["loss"] = plot_loss(Path(live_dir))
    for s in splits:
        figs[f"confusion_{s}"] = plot_confusion(metrics[s], f"Which source did the answer come from? {split_title(s)}")
    figs["confidence_gain"] = plot_confidence_gain(Path(predictions_dir))
    figs["prior_strength"] = plot_prior_strength(metrics, splits)
    figs = {k: v for k, v in figs.items() if v}
    figures_dir = Path(figures_dir)
    for name, data in figs.items():
        with atomic_path(figures_dir / f"{name}.png") as tmp:
            tmp.write_bytes(data)
    sections = []
    for s in splits:
        models = [m for m in metrics[s] if m not in NOT_MODELS]
        sections.append({
            "split": s, "title": split_title(s), "models": models,
            "metric_rows": metric_rows(metrics[s], models, spans=s not in TEST_SPLITS),
            "delta": {"adherence": points(paired(metrics[s], "adherence")),
                      "retention": points(paired(metrics[s], "closed_book_retention"))},
            "rows": setting_rows(metrics[s], models),
            "case_rows": setting_rows(metrics[s], models, "case_adherence_by_setting", "case_by_setting"),
        })
    ctx = {
        "summary": summary(metrics),
        "sections": sections,
        "headlines": headlines(metrics, _split_order),
        "skipped": {name: m["skipped"] for name, m in metrics.items() if "skipped" in m},
        "validation": validation,
        "failures": failures(Path(predictions_dir)),
        "confusions": [s for s in splits if f"confusion_{s}" in figs],
        "changes": None if previous is None else change_rows(metric_changes(previous, metrics)),
        "prior_rows": prior_rows(metrics, splits),
    }
    out_dir = Path(out_dir)
    rel = {k: str((figures_dir / f"{k}.png").resolve().relative_to(out_dir.resolve())) for k in figs}
    md = _ENV.get_template("report.md.j2").render(**ctx, figures=rel)
    html = _ENV.get_template("report.html.j2").render(
        **ctx, figures={k: "data:image/png;base64," + base64.b64encode(v).decode() for k, v in figs.items()}
    )
    return {"md": write_text(out_dir / "report.md", md), "html": write_text(out_dir / "report.html", html)}

