"""Stage report: reports/report.md and a self-contained reports/report.html with plots.

    reads: reports/metrics.json, reports/validation.json, reports/train, reports/predictions
    writes: reports/report.md, reports/report.html, reports/figures/
"""
from __future__ import annotations

import base64
import csv
import io
import json
from pathlib import Path

import jinja2

from tasks.core.atomic import atomic_path, write_text
from tasks.core.metrics import describe_delta, metric_changes
from tasks.core.schema import (
    DVC_LOCK,
    FIGURES,
    METRICS,
    NOT_MODELS,
    PREDICTIONS,
    REPORTS,
    SOURCES,
    TEST_SPLITS,
    TRAIN_LIVE,
    VALIDATION,
)
from tasks.params.section import StageParams


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


def _png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def plot_adherence(metrics: dict, title: str = "Adherence to the knowledge hierarchy, per setting") -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [m for m in metrics if m not in NOT_MODELS]
    settings = sorted({s for m in models for s in metrics[m]["adherence_by_setting"]})
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / max(1, len(models))
    for i, m in enumerate(models):
        vals = [metrics[m]["adherence_by_setting"].get(s) or 0 for s in settings]
        ax.bar([x + i * width for x in range(len(settings))], vals, width, label=m)
    ax.set_xticks([x + width * (len(models) - 1) / 2 for x in range(len(settings))], settings, rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("adherence")
    ax.set_title(title)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def _read_tsv(path: Path) -> tuple[list[float], list[float]]:
    if not path.exists():
        return [], []
    with open(path) as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    key = [k for k in rows[0] if k not in ("step", "timestamp")][0] if rows else None
    return [float(r["step"]) for r in rows], [float(r[key]) for r in rows]


def plot_loss(live_dir: Path) -> bytes | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # dvclive: SFT's per-log values at the top level, evaluation under eval/, the DPO phase under dpo/.
    sft, dpo = live_dir / "plots" / "metrics", live_dir / "dpo" / "plots" / "metrics"
    panels = {  # title: (y label, {curve: (steps, values)})
        "SFT loss": ("loss", {"train": _read_tsv(sft / "loss.tsv"), "eval": _read_tsv(sft / "eval" / "loss.tsv")}),
        "learning rate": ("learning rate", {"SFT": _read_tsv(sft / "learning_rate.tsv"),
                                            "DPO": _read_tsv(dpo / "learning_rate.tsv")}),
        "DPO loss": ("loss", {"train": _read_tsv(dpo / "loss.tsv")}),
        "DPO rewards": ("reward", {"margin (chosen - rejected)": _read_tsv(dpo / "rewards" / "margins.tsv"),
                                   "accuracy (chosen > rejected)": _read_tsv(dpo / "rewards" / "accuracies.tsv")}),
    }
    panels = {k: v for k, v in panels.items() if any(x for x, _ in v[1].values())}
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.5), squeeze=False)
    for ax, (title, (ylabel, curves)) in zip(axes[0], panels.items()):
        for name, (x, y) in curves.items():
            if x:
                ax.plot(x, y, marker="o" if len(x) < 5 else None, label=name)
        ax.set_xlabel("logging step (dvclive)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return _png(fig)


def plot_confusion(metrics: dict, title: str = "Which source did the answer come from?") -> bytes | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [m for m in metrics if m not in NOT_MODELS and "source_confusion" in metrics[m]]
    if not models:
        return None
    cols = [*SOURCES, "none"]
    fig, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 3.8), squeeze=False)
    for k, (ax, m) in enumerate(zip(axes[0], models)):
        conf = metrics[m]["source_confusion"]
        grid = [[conf[e][f] for f in cols] for e in SOURCES]
        ax.imshow(grid, cmap="Blues")
        for i, row in enumerate(grid):
            for j, v in enumerate(row):
                ax.text(j, i, str(v), ha="center", va="center", fontsize=9)
        ax.set_xticks(range(len(cols)), cols, rotation=30, ha="right")
        ax.set_yticks(range(len(SOURCES)), SOURCES)
        ax.set_xlabel("followed source")
        if k == 0:
            ax.set_ylabel("expected source")
        else:
            ax.set_yticklabels([])
        ax.set_title(m)
    fig.suptitle(title)
    fig.tight_layout()
    return _png(fig)


def plot_confidence_gain(pred_dir: Path, name: str = "test") -> bytes | None:
    """CK-PLUG's confidence gain per setting, base beside tuned: where a passage or instruction
    made the model surer of its first answer token (> 0) and where it met a conflict (< 0)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    gains: dict[str, dict[str, list[float]]] = {}
    for model in ("base", "tuned"):
        path = pred_dir / f"{model}_{name}.jsonl"
        for line in path.read_text().splitlines() if path.exists() else []:
            r = json.loads(line)
            if "confidence_gain" in r:
                gains.setdefault(r["setting"], {}).setdefault(model, []).append(r["confidence_gain"])
    if not gains:
        return None
    settings = sorted(gains)
    fig, ax = plt.subplots(figsize=(9, 4))
    for k, (model, color) in enumerate((("base", "tab:blue"), ("tuned", "tab:orange"))):
        data = [gains[s].get(model, []) for s in settings]
        pos = [i + (k - 0.5) * 0.38 for i in range(len(settings))]
        parts = ax.boxplot([d or [float("nan")] for d in data], positions=pos, widths=0.34, patch_artist=True,
                           showfliers=False)
        for box in parts["boxes"]:
            box.set_facecolor(color)
            box.set_alpha(0.6)
        ax.plot([], [], color=color, linewidth=6, alpha=0.6, label=model)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xticks(range(len(settings)), settings, rotation=30, ha="right")
    ax.set_ylabel("confidence gain (nats)")
    ax.set_title(f"First-token entropy without minus with what was given ({name})")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


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


SPLIT_TITLES = {
    "test": "held-out subjects",
    "test_ood_relation": "held-out relations (never trained)",
    "test_ood_phrasing": "held-out phrasings and assumption styles",
    "test_ood_domain": "held-out knowledge domains (sources, relations and wordings never trained)",
}


def display_name(name: str) -> str:
    """A split's or benchmark's name as the report shows it."""
    return SPLIT_TITLES.get(name, f"benchmark {name}")


def _split_order(split: str) -> tuple[int, str]:
    return (TEST_SPLITS.index(split) if split in TEST_SPLITS else len(TEST_SPLITS), split)


def headlines(metrics: dict) -> list[dict]:
    """One row per split with both models: adherence beside closed-book retention (tuned - base,
    paired interval) and robustness on the facts the base knows: what the model learned next to
    what it may have lost, at the top of the report."""
    rows = []
    for split, m in sorted(metrics.items(), key=lambda kv: _split_order(kv[0])):
        if "delta" not in m:
            continue
        tuned, base, d = m["tuned"], m["base"], m["delta"]
        rows.append({"split": split, "title": display_name(split),
                     "adherence": tuned["adherence"], "adherence_base": base["adherence"],
                     "retention": d.get("closed_book_retention"),
                     "retention_ci95": d.get("closed_book_retention_ci95"),
                     "significant": d.get("closed_book_retention_significant"),
                     "robust_known": tuned.get("irrelevant_robustness_base_known"),
                     "robust_known_base": base.get("irrelevant_robustness_base_known")})
    return rows


def _with_ci(value, ci) -> str:
    return "–" if value is None else f"{value} [{ci[0]}, {ci[1]}]" if ci else str(value)


def _delta(d: dict | None) -> str:
    if not d:
        return "–"
    return describe_delta(d)


def setting_rows(m: dict, models: list[str], key: str = "adherence_by_setting",
                 delta_key: str = "by_setting") -> list[dict]:
    """Per setting: each model's rate with its 95% interval, and tuned - base with its paired one.
    `key`/`delta_key` pick plain adherence or the case-level rate of grouped questions."""
    settings = sorted({s for name in models for s in m[name].get(key, {})})
    return [{"setting": s,
             "cells": [_with_ci(m[name][key].get(s), m[name].get(f"{key}_ci95", {}).get(s)) for name in models],
             "delta": _delta(m.get("delta", {}).get(delta_key, {}).get(s))} for s in settings]


def build_report(metrics_path: str | Path, validation_path: str | Path, live_dir: str | Path,
                 predictions_dir: str | Path, out_dir: str | Path, figures_dir: str | Path,
                 previous: dict | None = None) -> dict[str, Path]:
    metrics = json.loads(Path(metrics_path).read_text())
    validation = json.loads(Path(validation_path).read_text()) if Path(validation_path).exists() else None
    # the synthesized splits in their order, then the benchmarks by name
    splits = sorted((s for s in metrics if metrics[s] and "skipped" not in metrics[s]), key=_split_order)
    figs: dict[str, bytes | None] = {
        f"adherence_{s}": plot_adherence(metrics[s], f"Adherence per setting: {display_name(s)}") for s in splits
    }
    figs["loss"] = plot_loss(Path(live_dir))
    for s in splits:
        figs[f"confusion_{s}"] = plot_confusion(metrics[s], f"Which source did the answer come from? {display_name(s)}")
    figs["confidence_gain"] = plot_confidence_gain(Path(predictions_dir))
    figs = {k: v for k, v in figs.items() if v}
    figures_dir = Path(figures_dir)
    for name, png in figs.items():
        with atomic_path(figures_dir / f"{name}.png") as tmp:
            tmp.write_bytes(png)
    sections = []
    for s in splits:
        models = [m for m in metrics[s] if m not in NOT_MODELS]
        sections.append({
            "split": s, "title": display_name(s), "metrics": metrics[s], "models": models,
            "rows": setting_rows(metrics[s], models),
            "case_rows": setting_rows(metrics[s], models, "case_adherence_by_setting", "case_by_setting"),
        })
    ctx = {
        "sections": sections,
        "headlines": headlines(metrics),
        "skipped": {name: m["skipped"] for name, m in metrics.items() if "skipped" in m},
        "validation": validation,
        "failures": failures(Path(predictions_dir)),
        "confusions": [s for s in splits if f"confusion_{s}" in figs],
        "changes": None if previous is None else metric_changes(previous, metrics),
        "summary_keys": ["adherence", "closed_book_accuracy", "irrelevant_robustness", "irrelevant_robustness_ci95",
                         "irrelevant_robustness_known", "irrelevant_robustness_base_known", "memorization_ratio",
                         "em", "f1"],
    }
    out_dir = Path(out_dir)
    rel = {k: str((figures_dir / f"{k}.png").resolve().relative_to(out_dir.resolve())) for k in figs}
    md = _ENV.get_template("report.md.j2").render(**ctx, figures=rel)
    html = _ENV.get_template("report.html.j2").render(
        **ctx, figures={k: "data:image/png;base64," + base64.b64encode(v).decode() for k, v in figs.items()}
    )
    return {"md": write_text(out_dir / "report.md", md), "html": write_text(out_dir / "report.html", html)}
