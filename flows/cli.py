"""The `kpref` command line: stages (for dvc.yaml), the Prefect pipeline, answer, evaluate and compare."""
from __future__ import annotations

import importlib.resources
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from tasks.core.schema import KprefError
from tasks.stages import quiet_offline_env

quiet_offline_env()  # before any library reads its settings

app = typer.Typer(help="kpref: teach a model which knowledge to trust (instruction > context > memory).",
                  no_args_is_help=True, pretty_exceptions_enable=False)
err = Console(stderr=True)

def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[RichHandler(console=err, show_path=False)])
    for noisy in ("httpx", "urllib3", "great_expectations", "filelock"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _fail(e: KprefError) -> None:
    err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def stage(name: str = typer.Argument(..., help="A stage of dvc.yaml."),
          params: Path = typer.Option(Path("params.yaml"), help="Params file, relative to --root."),
          root: Path = typer.Option(Path("."), help="Project root (where dvc.yaml lives).")) -> None:
    """Run one pipeline stage (what dvc.yaml calls; prefer `dvc repro` or `kpref run`)."""
    from tasks.stages import run_stage

    _logging()
    try:
        run_stage(name, params, root)
    except KprefError as e:
        _fail(e)


@app.command()
def check(params: Path = typer.Option(Path("params.yaml"), help="Params file."),
          explain: bool = typer.Option(False, "--explain", help="List every knob: type, range, value, meaning.")) -> None:
    """Validate params.yaml and the base model setting without running anything heavy."""
    from tasks.base_model import classify
    from tasks.params.full import load_params

    try:
        p = load_params(params)
        kind = classify(p.model.base)
    except KprefError as e:
        _fail(e)
    if explain:
        _explain(p)
    Console().print(f"[green]ok[/] {params}: base model {p.model.base!r} ({kind})")


PARAMS_HELP = ("Params file for the defaults (default: ./params.yaml where there is one, else the packaged "
               "defaults); the flags win over it.")


def evaluate_params(params: Path | None):
    """params.yaml's evaluate section for `answer` and `evaluate`, which need nothing else of a
    project: from `params` if given, else ./params.yaml, else the defaults kpref ships."""
    from tasks.params.evaluate import EvaluateParams
    from tasks.params.section import StageParams, load_params

    class Evaluate(StageParams):
        evaluate: EvaluateParams

    if params is None:
        here = Path("params.yaml")
        params = here if here.exists() else Path(str(importlib.resources.files("tasks.params") / "defaults.yaml"))
    return load_params(params, Evaluate).evaluate


def _explain(p) -> None:
    from rich.table import Table

    from tasks.params.full import knobs

    values = p.model_dump(by_alias=True, mode="json")  # as params.yaml would spell it: null, true, [..]
    table = Table("key", "value", "type", "what it does", title="params.yaml", show_lines=False)
    for key, kind, description in knobs():
        value = values
        for part in key.split("."):
            value = value[part]
        table.add_row(key, json.dumps(value), kind, description)
    Console(width=max(160, Console().width)).print(table)


@app.command()
def run(root: Path = typer.Option(Path("."), help="Project root."),
        force: bool = typer.Option(False, help="Re-run every stage even if DVC finds it up to date."),
        share: bool = typer.Option(True, help="Pull from the default DVC remote first and push after.")) -> None:
    """Run the pipeline as a Prefect flow; DVC decides which stages are stale."""
    from flows.pipeline import kpref_pipeline
    from tasks.params.full import load_params

    _logging()
    try:
        load_params(root / "params.yaml")  # fail fast, before Prefect starts
        summary = kpref_pipeline(root=str(root.resolve()), force=force, share=share)
    except KprefError as e:
        _fail(e)
    for s in summary["stages"]:
        Console().print(f"  {s['stage']:<12} {'ran' if s['ran'] else 'up to date'}")


@app.command()
def answer(model: Path = typer.Option(..., help="HF checkpoint directory (safetensors)."),
           question: str = typer.Option(..., help="The question."),
           context: Optional[list[str]] = typer.Option(None, help="A context passage; repeat for several."),
           instruction: Optional[str] = typer.Option(None, help="A user instruction or assumption."),
           explain: bool = typer.Option(False, "--explain", help="Also say which source the answer followed "
                                                                 "(instruction / context / memory) and the "
                                                                 "confidence gain."),
           max_new_tokens: Optional[int] = typer.Option(None, min=1, help="Default: evaluate.max_new_tokens."),
           params: Optional[Path] = typer.Option(None, help=PARAMS_HELP)) -> None:
    """Print the model's answer, with the same prompt format as training."""
    from tasks.core import prompt
    from tasks.evaluation.predict import explain_answer
    from tasks.runtime.generate import generate
    from tasks.runtime.modeling import load_model

    try:
        ev = evaluate_params(params)
        m, tok = load_model(model, precision=ev.precision)
    except KprefError as e:
        _fail(e)
    n_tokens = max_new_tokens or ev.max_new_tokens
    if not explain:
        text = prompt.render(tok, question, context or [], instruction)
        print(generate(m, tok, [text], batch_size=1, max_new_tokens=n_tokens, desc="answering")[0])
        return
    x = explain_answer(m, tok, question, context or [], instruction, n_tokens)
    out = Console()
    out.print(x.answer, highlight=False)
    out.print(f"[bold]followed:[/] {'memory' if x.followed == 'parametric' else x.followed}", highlight=False)
    for source, said in x.by_source.items():
        given = {"parametric": "nothing", "instruction": "the instruction only", "context": "the context only"}[source]
        out.print(f"  with {given}: {said}", highlight=False)
    if x.confidence_gain is not None:
        out.print(f"[bold]confidence gain:[/] {x.confidence_gain:+.3f} nats (first-token entropy without the "
                  "instruction and context minus with them; < 0: what was given conflicts with memory)",
                  highlight=False)


@app.command()
def evaluate(model: Path = typer.Option(..., help="HF checkpoint directory (safetensors)."),
             data: Path = typer.Option(..., help="Conflict set, one JSON object a line; or a benchmark file."),
             out: Path = typer.Option(..., help="Output directory for metrics.json and predictions.jsonl."),
             benchmark: Optional[str] = typer.Option(None, help="--data is a benchmark file in its authors' "
                                                                 "format: mquake, ifqa or mrqa."),
             max_items: Optional[int] = typer.Option(None, min=1, help="With --benchmark: the first N cases "
                                                                        "(MQuAKE) or questions (IfQA, MRQA)."),
             batch_size: Optional[int] = typer.Option(None, min=1, help="Default: evaluate.batch_size."),
             max_new_tokens: Optional[int] = typer.Option(None, min=1, help="Default: evaluate.max_new_tokens."),
             params: Optional[Path] = typer.Option(None, help=PARAMS_HELP)) -> None:
    """Evaluate any model on a user's conflict set (JSONL) or a public benchmark file."""
    from tasks.core.atomic import write_json, write_jsonl
    from tasks.core.schema import read_eval_items
    from tasks.evaluate import evaluate_model
    from tasks.evaluation.benchmarks import load_benchmark

    _logging()
    try:
        p = evaluate_params(params)
        # every record checked before the model loads
        try:
            items = load_benchmark(benchmark, data, max_items) if benchmark else read_eval_items(data)
        except FileNotFoundError as e:
            raise KprefError(str(e)) from None
        ev = evaluate_model(model, items, batch_size or p.batch_size, max_new_tokens or p.max_new_tokens,
                            desc="evaluating", precision=p.precision)
    except KprefError as e:
        _fail(e)
    write_jsonl(out / "predictions.jsonl", ev.predictions)
    write_json(out / "metrics.json", ev.metrics)
    keys = ("n", "adherence", "adherence_ci95", "adherence_by_setting", "case_adherence_by_setting",
            "adherence_by_source")
    shown = {k: ev.metrics[k] for k in keys if k in ev.metrics}
    prior = ev.metrics.get("prior_strength")
    if prior:  # conflict adherence where the model is surest of its memory, and the fall from the least sure
        shown["top_quintile"] = prior["quintiles"][-1]["adherence"]
        shown["prior_gap"], shown["prior_gap_ci95"] = prior["gap"]["delta"], prior["gap"]["ci95"]
    Console().print_json(json.dumps(shown))


@app.command()
def compare(run_a: Path = typer.Argument(..., help="A run: a project folder after `dvc repro`, or its "
                                                    "reports/predictions."),
            run_b: Path = typer.Argument(..., help="The run to compare with it, on the same questions."),
            names: str = typer.Option("A,B", help="What to call the two runs, comma-separated."),
            splits: Optional[list[str]] = typer.Option(None, "--split", help="A prediction set to compare; "
                                                       "repeat for several (default: the four test splits)."),
            json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the figures here.")) -> None:
    """B minus A on the questions both answered, each difference with its paired 95% interval."""
    from tasks.core.atomic import write_json
    from tasks.core.metrics import describe_delta
    from tasks.evaluation.compare import SPLITS, compare_runs

    name_a, _, name_b = names.partition(",")
    try:
        comparison = compare_runs(run_a, run_b, tuple(splits or SPLITS))
    except KprefError as e:
        _fail(e)
    figures = comparison.figures
    table = Table(title=f"{name_b or 'B'} minus {name_a}: paired 95% intervals (significant: the interval excludes 0)")
    for col in ("split", "measure", name_a, name_b or "B", "difference"):
        table.add_column(col)
    for split, rows in figures.items():
        for i, r in enumerate(rows):
            table.add_row(split if i == 0 else "", r.measure, r.a, r.b, describe_delta(r.delta),
                          end_section=i == len(rows) - 1)
    console = Console()
    console.print(table)
    for why in comparison.unpaired.values():
        console.print(f"[yellow]not paired[/yellow] {why}")
    if json_out:
        write_json(json_out, {**{split: [asdict(r) for r in rows] for split, rows in figures.items()},
                              **({"unpaired": comparison.unpaired} if comparison.unpaired else {})})


@app.command()
def serve(deployment: str = typer.Option("nightly", help="Which deployment of prefect.yaml to serve."),
          root: Path = typer.Option(Path("."), help="Project root (where prefect.yaml lives).")) -> None:
    """Serve the pipeline from this machine, with the schedule, limit, tags, trigger and parameters
    that prefect.yaml gives the deployment (needs a Prefect server: PREFECT_API_URL)."""
    from flows.deploy import served_deployment
    from flows.pipeline import kpref_pipeline

    try:
        options = served_deployment(root.resolve(), deployment)
    except KprefError as e:
        _fail(e)
    # its own name: serving under the work pool's deployment name would take it over (and pause it on exit)
    kpref_pipeline.serve(name=f"{deployment}-local", **options)


@app.command()
def deploy(root: Path = typer.Option(Path("."), help="Project root (where prefect.yaml lives).")) -> None:
    """Check prefect.yaml against the server (the API answers, each work pool exists, each schedule
    parses), then deploy every deployment in it (`prefect --no-prompt deploy --all`)."""
    import subprocess

    from flows.deploy import check_deployable

    try:
        names = check_deployable(root.resolve())
    except KprefError as e:
        _fail(e)
    proc = subprocess.run([str(Path(sys.executable).parent / "prefect"), "--no-prompt", "deploy", "--all"], cwd=root)
    if proc.returncode == 0:
        Console().print(f"[green]deployed[/] {', '.join(names)}")
    raise typer.Exit(proc.returncode)


@app.command(name="data-updated")
def data_updated(files: list[Path] = typer.Argument(..., help="Facts files that changed.")) -> None:
    """Tell Prefect that facts changed: emits `kpref.data.updated` per file, which the deployment's
    trigger in prefect.yaml turns into a retrain."""
    from flows.deploy import emit_data_updated

    try:
        for event_id, path in emit_data_updated(files):
            Console().print(f"emitted kpref.data.updated for {path} ({event_id})")
    except KprefError as e:
        _fail(e)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(app())
