"""The `kpref` command line: stages (for dvc.yaml), the Prefect pipeline, answer and evaluate."""
from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.logging import RichHandler

from tasks.errors import KprefError

app = typer.Typer(help="kpref: teach a model which knowledge to trust (instruction > context > memory).",
                  no_args_is_help=True, pretty_exceptions_enable=False)
err = Console(stderr=True)

# No network here: keep every library from phoning home.
for _k, _v in {"DVC_NO_ANALYTICS": "1", "GX_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
               "HF_HUB_DISABLE_TELEMETRY": "1", "TOKENIZERS_PARALLELISM": "false"}.items():
    os.environ.setdefault(_k, _v)


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(console=err, show_path=False)])
    for noisy in ("httpx", "urllib3", "great_expectations", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _fail(e: KprefError) -> None:
    err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def stage(name: str = typer.Argument(..., help="A stage of dvc.yaml."),
          params: Path = typer.Option(Path("params.yaml"), help="Params file."),
          root: Path = typer.Option(Path("."), help="Project root (where dvc.yaml lives).")) -> None:
    """Run one pipeline stage (what dvc.yaml calls; prefer `dvc repro` or `kpref run`)."""
    from tasks.params import load_params
    from tasks.stages import STAGES

    _logging()
    try:
        if name not in STAGES:
            raise KprefError(f"unknown stage {name!r}; expected one of {list(STAGES)}")
        p = load_params(root / params)
        STAGES[name](p, root)
    except KprefError as e:
        _fail(e)


@app.command()
def check(params: Path = typer.Option(Path("params.yaml"), help="Params file.")) -> None:
    """Validate params.yaml and the base model setting without running anything heavy."""
    from tasks.base_model import classify
    from tasks.params import load_params

    try:
        p = load_params(params)
        kind = classify(p.model.base)
    except KprefError as e:
        _fail(e)
    Console().print(f"[green]ok[/] {params}: base model {p.model.base!r} ({kind})")


@app.command()
def run(root: Path = typer.Option(Path("."), help="Project root."),
        force: bool = typer.Option(False, help="Re-run every stage even if DVC finds it up to date.")) -> None:
    """Run the pipeline as a Prefect flow; DVC decides which stages are stale."""
    from flows.pipeline import kpref_pipeline
    from tasks.params import load_params

    _logging()
    try:
        load_params(root / "params.yaml")  # fail fast, before Prefect starts
        summary = kpref_pipeline(root=str(root.resolve()), force=force)
    except KprefError as e:
        _fail(e)
    for s in summary["stages"]:
        Console().print(f"  {s['stage']:<12} {'ran' if s['ran'] else 'up to date'}")


@app.command()
def answer(model: Path = typer.Option(..., help="HF checkpoint directory (safetensors)."),
           question: str = typer.Option(..., help="The question."),
           context: Optional[list[str]] = typer.Option(None, help="A context passage; repeat for several."),
           instruction: Optional[str] = typer.Option(None, help="A user instruction or assumption."),
           max_new_tokens: int = typer.Option(32, min=1)) -> None:
    """Print the model's answer, with the same prompt format as training."""
    from tasks import prompt
    from tasks.generate import generate
    from tasks.modeling import load_model

    try:
        m, tok = load_model(model)
    except KprefError as e:
        _fail(e)
    text = prompt.render(tok, question, context or [], instruction)
    print(generate(m, tok, [text], batch_size=1, max_new_tokens=max_new_tokens, desc="answering")[0])


@app.command()
def evaluate(model: Path = typer.Option(..., help="HF checkpoint directory (safetensors)."),
             data: Path = typer.Option(..., help="Conflict set, one JSON object a line."),
             out: Path = typer.Option(..., help="Output directory for metrics.json and predictions.jsonl."),
             batch_size: int = typer.Option(16, min=1), max_new_tokens: int = typer.Option(24, min=1)) -> None:
    """Evaluate any model on a user's conflict set (JSONL)."""
    from tasks.atomic import write_json, write_jsonl
    from tasks.evaluate import evaluate_model
    from tasks.schema import read_eval_items

    _logging()
    try:
        items = read_eval_items(data)  # every line checked before the model loads
        ev = evaluate_model(model, items, batch_size, max_new_tokens, desc="evaluating")
    except KprefError as e:
        _fail(e)
    write_jsonl(out / "predictions.jsonl", ev.predictions)
    write_json(out / "metrics.json", ev.metrics)
    Console().print_json(json.dumps({k: ev.metrics[k] for k in ("n", "adherence", "adherence_by_setting",
                                                                 "adherence_by_source")}))


@app.command()
def serve(name: str = typer.Option("kpref-nightly", help="Deployment name."),
          cron: str = typer.Option("0 3 * * *", help="Schedule (cron)."),
          root: Path = typer.Option(Path("."), help="Project root.")) -> None:
    """Serve the pipeline as a scheduled Prefect deployment (needs a Prefect server)."""
    from flows.pipeline import kpref_pipeline

    kpref_pipeline.serve(name=name, cron=cron, parameters={"root": str(root.resolve())})


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
