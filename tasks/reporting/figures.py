"""The report's figures as PNG bytes: adherence per setting with its intervals, the training
curves, source attribution and the confidence gain. Each draws on a fresh Agg canvas."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from tasks.core.schema import NOT_MODELS, SOURCES
from tasks.reporting.words import setting_label


def canvas(ncols: int = 1, size: tuple[float, float] = (9, 4)):
    """A figure of `ncols` panels side by side, on the non-interactive backend: (fig, axes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(size[0] * ncols, size[1]), squeeze=False)
    return fig, list(axes[0])


def png(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def plot_adherence(metrics: dict, title: str = "Adherence to the knowledge hierarchy, per setting") -> bytes:
    """Each model's adherence per setting, a bar with its 95% interval."""
    models = [m for m in metrics if m not in NOT_MODELS]
    settings = sorted({s for m in models for s in metrics[m]["adherence_by_setting"]})
    fig, (ax,) = canvas()
    width = 0.8 / max(1, len(models))
    for i, m in enumerate(models):
        vals = [metrics[m]["adherence_by_setting"].get(s) or 0 for s in settings]
        cis = metrics[m].get("adherence_by_setting_ci95", {})
        err = [[v - cis[s][0] if s in cis else 0 for s, v in zip(settings, vals)],
               [cis[s][1] - v if s in cis else 0 for s, v in zip(settings, vals)]]
        ax.bar([x + i * width for x in range(len(settings))], vals, width, yerr=err, capsize=3, label=m,
               error_kw={"elinewidth": 1, "ecolor": "#333"})
    ax.set_xticks([x + width * (len(models) - 1) / 2 for x in range(len(settings))],
                  [setting_label(s) for s in settings], rotation=30, ha="right")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("adherence (95% interval)")
    ax.set_title(title)
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return png(fig)


def _read_tsv(path: Path) -> tuple[list[float], list[float]]:
    if not path.exists():
        return [], []
    with open(path) as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    key = [k for k in rows[0] if k not in ("step", "timestamp")][0] if rows else None
    return [float(r["step"]) for r in rows], [float(r[key]) for r in rows]


def plot_loss(live_dir: Path) -> bytes | None:
    # dvclive: SFT's per-log values at the top level, evaluation under eval/, the DPO phase under dpo/.
    sft = live_dir / "plots" / "metrics"
    dpo = sft / "dpo"
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
    fig, axes = canvas(len(panels), (5, 3.5))
    for ax, (title, (ylabel, curves)) in zip(axes, panels.items()):
        for name, (x, y) in curves.items():
            if x:
                ax.plot(x, y, marker="o" if len(x) < 5 else None, label=name)
        ax.set_xlabel("logging step (dvclive)")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return png(fig)


def plot_confusion(metrics: dict, title: str = "Which source did the answer come from?") -> bytes | None:
    models = [m for m in metrics if m not in NOT_MODELS and "source_confusion" in metrics[m]]
    if not models:
        return None
    cols = [*SOURCES, "none"]
    fig, axes = canvas(len(models), (4.5, 3.8))
    for k, (ax, m) in enumerate(zip(axes, models)):
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
    return png(fig)


def plot_confidence_gain(pred_dir: Path, name: str = "test") -> bytes | None:
    """CK-PLUG's confidence gain per setting, base beside tuned: where a passage or instruction
    made the model surer of its first answer token (> 0) and where it met a conflict (< 0)."""
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
    fig, (ax,) = canvas()
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
    ax.set_xticks(range(len(settings)), [setting_label(s) for s in settings], rotation=30, ha="right")
    ax.set_ylabel("confidence gain (nats)")
    ax.set_title(f"First-token entropy without minus with what was given ({name})")
    ax.legend()
    ax.grid(axis="y", alpha=0.3)
    return png(fig)


def plot_prior_strength(metrics: dict, names: list[str]) -> bytes | None:
    """ClashEval's figure, a panel per split or benchmark: the share of conflict answers that follow
    the given source (instruction or context) in each quintile of the base model's certainty of
    what memory says, base and tuned, each point with its 95% interval."""
    panels = [n for n in names if any(metrics[n].get(m, {}).get("prior_strength") for m in ("base", "tuned"))]
    if not panels:
        return None
    fig, axes = canvas(len(panels), (4.2, 3.6))
    for k, (ax, name) in enumerate(zip(axes, panels)):
        for model, style in (("base", "o--"), ("tuned", "s-")):
            prior = metrics[name].get(model, {}).get("prior_strength")
            if not prior:
                continue
            q = prior["quintiles"]
            x, y = [b["certainty_mean"] for b in q], [b["adherence"] for b in q]
            err = [[v - b["adherence_ci95"][0] for v, b in zip(y, q)], [b["adherence_ci95"][1] - v for v, b in zip(y, q)]]
            gap = prior["gap"]
            ax.errorbar(x, y, yerr=err, fmt=style, capsize=3,
                        label=f"{model} (top − bottom {gap['delta']:+.2f} [{gap['ci95'][0]:+.2f}, {gap['ci95'][1]:+.2f}])")
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(0, 1.05)
        ax.set_xlabel("base model's certainty (quintile mean)")
        if k == 0:
            ax.set_ylabel("follows the given source")
        ax.set_title(name)
        ax.legend(fontsize=7, loc="best")
        ax.grid(alpha=0.3)
    fig.suptitle("Conflict adherence against the strength of the memory it contradicts (ClashEval)")
    fig.tight_layout()
    return png(fig)
