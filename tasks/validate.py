"""Stage validate: a Great Expectations suite over the synthesized splits.

A failing suite stops the pipeline before training, naming each failed expectation
with example ids. The JSON summary and GX Data Docs HTML land under reports/.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import pandas as pd

from tasks.atomic import atomic_dir, write_json
from tasks.errors import KprefError
from tasks.metrics import normalize
from tasks.params import SETTINGS
from tasks.schema import SOURCES, read_jsonl
from tasks.synthesize import SPLITS

log = logging.getLogger(__name__)

REQUIRED = ("id", "split", "setting", "subject", "relation", "question", "target", "expected_source", "completion")
SETTING_SOURCE = {
    "closed_book": "parametric",
    "ctx_irrelevant": "parametric",
    "ctx_support": "context",
    "ctx_counterfactual": "context",
    "ctx_mixed": "context",
    "instr_irrelevant": "context",
    "instr_only": "instruction",
    "instr_vs_ctx": "instruction",
}
CONFLICT_SETTINGS = ("ctx_counterfactual", "ctx_mixed", "instr_only", "instr_vs_ctx", "instr_irrelevant")


def _contains(text: str | None, answer: str | None) -> bool:
    return bool(text and answer) and f" {normalize(answer)} " in f" {normalize(text)} "


def derive_checks(df: pd.DataFrame) -> pd.DataFrame:
    """Per-row hierarchy facts that the suite then expects to hold (one boolean column each)."""
    df = df.copy()
    src_answer = [a.get(s) if isinstance(a, dict) else None for a, s in zip(df["answers"], df["expected_source"])]
    df["target_is_source_answer"] = [t == a for t, a in zip(df["target"], src_answer)]
    df["source_matches_setting"] = [SETTING_SOURCE.get(s) == e for s, e in zip(df["setting"], df["expected_source"])]

    def in_source_text(row) -> bool:
        if row.expected_source == "instruction":
            return _contains(row.instruction, row.target)
        if row.expected_source == "context":
            return any(_contains(c, row.target) for c in row.contexts)
        return True  # memory has no text to check

    df["target_in_source_text"] = [in_source_text(r) for r in df.itertuples()]
    df["conflict_differs_from_world"] = [
        s not in CONFLICT_SETTINGS or normalize(t) != normalize(w)
        for s, t, w in zip(df["setting"], df["target"], df["world_answer"])
    ]
    df["instruction_differs_from_context"] = [
        s != "instr_vs_ctx" or (a.get("instruction") != a.get("context"))
        for s, a in zip(df["setting"], df["answers"])
    ]
    df["completion_states_target"] = [_contains(c, t) for c, t in zip(df["completion"], df["target"])]
    return df


_CHECK_COLUMNS = {
    "target_is_source_answer": "target is the answer of the source the hierarchy picks",
    "source_matches_setting": "expected_source is the one the setting's hierarchy names",
    "target_in_source_text": "target occurs in the text of its source",
    "conflict_differs_from_world": "conflict targets differ from the world's answer",
    "instruction_differs_from_context": "in instr_vs_ctx, instruction and context disagree",
    "completion_states_target": "the training completion states the target",
}


def load_splits(data_dir: str | Path) -> dict[str, pd.DataFrame]:
    frames = {}
    for split in SPLITS:
        rows = read_jsonl(Path(data_dir) / f"{split}.jsonl")
        frames[split] = pd.DataFrame(rows)
    return frames


def build_suite(test_subjects: list[str]):
    import great_expectations as gx
    import great_expectations.expectations as gxe

    all_rows = gx.ExpectationSuite(name="kpref_splits")
    for col in REQUIRED:
        all_rows.add_expectation(gxe.ExpectColumnToExist(column=col))
        all_rows.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=col))
    all_rows.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="setting", value_set=list(SETTINGS)))
    all_rows.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="expected_source", value_set=list(SOURCES)))
    all_rows.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS)))
    all_rows.add_expectation(gxe.ExpectColumnValuesToBeUnique(column="id"))
    for col, why in _CHECK_COLUMNS.items():
        all_rows.add_expectation(gxe.ExpectColumnValuesToBeInSet(column=col, value_set=[True], meta={"why": why}))

    train_rows = gx.ExpectationSuite(name="kpref_train_val")
    train_rows.add_expectation(gxe.ExpectTableRowCountToBeBetween(min_value=1))
    train_rows.add_expectation(
        gxe.ExpectColumnValuesToNotBeInSet(
            column="subject", value_set=sorted(test_subjects), meta={"why": "test subjects never occur in train/val"}
        )
    )
    return all_rows, train_rows


def _summarize(results, max_examples: int) -> list[dict]:
    out = []
    for r in results:
        cfg = r.expectation_config
        res = r.result or {}
        examples = [
            ex.get("id", ex) if isinstance(ex, dict) else ex for ex in (res.get("unexpected_index_list") or [])
        ][:max_examples]
        out.append(
            {
                "expectation": cfg.type,
                "column": cfg.kwargs.get("column"),
                "why": (cfg.meta or {}).get("why"),
                "success": bool(r.success),
                "unexpected_count": res.get("unexpected_count"),
                "examples": [str(e) for e in examples],
            }
        )
    return out


def run_validation(data_dir: str | Path, summary_path: str | Path, docs_dir: str | Path, max_examples: int = 5) -> dict:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    frames = load_splits(data_dir)
    for split, df in frames.items():
        missing = [c for c in REQUIRED if c not in df.columns] if not df.empty else []
        if missing:
            raise KprefError(f"{Path(data_dir) / (split + '.jsonl')}: records lack field(s) {missing}")
    all_df = derive_checks(pd.concat([f for f in frames.values() if not f.empty], ignore_index=True))
    train_df = pd.concat([frames["train"], frames["val"]], ignore_index=True)
    test_subjects = sorted(set(frames["test"]["subject"])) if not frames["test"].empty else []

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    with atomic_dir(docs_dir) as docs_tmp:
        ctx.add_data_docs_site(
            site_name="kpref",
            site_config={
                "class_name": "SiteBuilder",
                "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(Path(docs_tmp).resolve())},
                "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            },
        )
        source = ctx.data_sources.add_pandas("splits")
        all_suite, train_suite = build_suite(test_subjects)
        definitions = []
        for name, suite, df in (("all_splits", all_suite, all_df), ("train_val", train_suite, train_df)):
            batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(name)
            definitions.append((gx.ValidationDefinition(name=name, data=batch, suite=ctx.suites.add(suite)), df))
        results, success = {}, True
        for vd, df in definitions:
            vd = ctx.validation_definitions.add(vd)
            checkpoint = ctx.checkpoints.add(
                gx.Checkpoint(
                    name=f"kpref_{vd.name}",
                    validation_definitions=[vd],
                    actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
                    result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["id"]},
                )
            )
            run = checkpoint.run(batch_parameters={"dataframe": df})
            success &= bool(run.success)
            results[vd.name] = [x for v in run.run_results.values() for x in _summarize(v.results, max_examples)]
    summary = {
        "success": success,
        "rows": {split: int(len(df)) for split, df in frames.items()},
        "n_expectations": sum(len(v) for v in results.values()),
        "n_failed": sum(not e["success"] for v in results.values() for e in v),
        "results": results,
    }
    write_json(summary_path, summary)
    if not success:
        lines = [
            f"- {e['expectation']} on '{e['column']}'" + (f" ({e['why']})" if e["why"] else "")
            + f": {e['unexpected_count']} unexpected, e.g. {e['examples']}"
            for v in results.values()
            for e in v
            if not e["success"]
        ]
        raise KprefError("validate: the data quality gate failed; training will not start.\n" + "\n".join(lines))
    return summary
