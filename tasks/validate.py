"""Stage validate: a Great Expectations suite over the synthesized splits.

    params: validate, synthesize.mix/pairs/assumption_styles, facts.split, train.max_length
    reads: models/base (tokenizer), data/relations.json, data/*.jsonl
    writes: reports/validation.json, reports/data_docs/

It checks what would silently ruin training: missing fields, unknown settings, targets that
are not the answer of the source the hierarchy picks (or absent from that source's text),
DPO pairs whose rejected answer is not of its setting's error type, setting and error-type
balance, leakage of test subjects, held-out relations/phrasings or a held-out domain's subjects,
relations and wordings into train, prompts longer
than the model's limit and duplicate prompts. A failing suite stops the pipeline before
training, naming each failed expectation with example ids.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pydantic import Field

from tasks.core.atomic import atomic_dir, write_json
from tasks.core.schema import (
    ASSUMPTION_STYLES,
    BASE_DIR,
    DATA_DIR,
    DATA_DOCS,
    ERROR_TYPES,
    OOD_DOMAIN,
    RELATIONS,
    SETTINGS,
    SOURCES,
    SPLITS,
    VALIDATION,
    KprefError,
    Relation,
    read_relations,
    read_splits,
)
from tasks.params.facts import FactsParams
from tasks.params.section import StageParams
from tasks.params.synthesize import SynthesizeParams
from tasks.params.train import TrainParams
from tasks.params.validate import ValidateParams
from tasks.validation.rows import CHECK_COLUMNS, derive_checks

log = logging.getLogger(__name__)

REQUIRED = ("id", "split", "setting", "subject", "relation", "question", "target", "expected_source", "completion")


@dataclass
class GateParams:
    """What the gate checks against: the mix, the tolerances and the held-out sets."""

    mix: dict[str, float]
    balance_tolerance: float
    max_type_ratio: float
    ood_relations: tuple[str, ...]
    held_out_templates: tuple[str, ...]
    held_out_styles: tuple[int, ...]
    max_length: int | None  # None: no token count (no tokenizer at hand)
    max_examples: int

    @classmethod
    def from_params(cls, p: Params, relations: dict[str, Relation]) -> "GateParams":
        split, synth = p.facts.split, p.synthesize
        templates, styles = held_out_phrasings(relations, split.ood_phrasings, synth.assumption_styles)
        return cls(mix=p.synthesize.mix, balance_tolerance=p.validate_.balance_tolerance,
                   max_type_ratio=p.synthesize.pairs.max_type_ratio, ood_relations=p.facts.split.ood_relations,
                   held_out_templates=templates, held_out_styles=styles, max_length=p.train.max_length,
                   max_examples=p.validate_.max_failed_examples)


class Params(StageParams):
    """The sections of params.yaml this stage reads."""
    validate_: ValidateParams = Field(alias="validate")
    synthesize: SynthesizeParams
    facts: FactsParams
    train: TrainParams


def run(p: Params, root: Path) -> None:
    relations = read_relations(root / RELATIONS)
    gate = GateParams.from_params(p, relations)
    s = run_validation(root / DATA_DIR, root / VALIDATION, root / DATA_DOCS, gate, root / BASE_DIR, relations)
    log.info("data quality gate passed: %d expectations", s["n_expectations"])


def held_out_phrasings(relations: dict[str, Relation], n: int, n_styles: int) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The question templates and assumption styles reserved for the OOD-phrasing split."""
    if n == 0:
        return (), ()
    templates = tuple(q for r in relations.values() if len(r.questions) > n for q in r.questions[-n:])
    return templates, tuple(range(n_styles - n, n_styles))


def held_out_statements(relations: dict, ood_relations: tuple[str, ...], test_subjects: list[str]) -> re.Pattern | None:
    """A sentence that states a held-out relation, or any relation of a test subject.

    Distractor passages and instructions are text the model trains on: a test subject or a
    held-out relation there leaks as surely as in the subject or relation column.
    """
    subjects = "|".join(re.escape(s) for s in sorted(test_subjects, key=len, reverse=True))
    alts = []
    for name, rel in relations.items():
        if name in ood_relations:
            alts.append(rel.head_pattern(r"[^.\n]+?"))
        elif subjects:
            alts.append(rel.head_pattern(f"(?:{subjects})"))
    # a statement starts a passage or sentence, or follows an assumption style's lead-in
    leads = {s.split("{")[0] for s in ASSUMPTION_STYLES} | {". ", "] ", "\n"}
    anchor = "|".join(f"(?<={re.escape(x)})" for x in sorted(leads) if x)
    return re.compile(rf"(?:^|{anchor})(?:{'|'.join(alts)})", re.IGNORECASE) if alts else None


def balance_table(train_val: pd.DataFrame, gate: GateParams) -> pd.DataFrame:
    """One row per (split, setting) and per error type, with whether its share is within tolerance."""
    rows = []
    total_w = sum(gate.mix.values())
    for split, df in train_val.groupby("split"):
        n = len(df)
        counts = df["setting"].value_counts().to_dict()
        for s in sorted(set(gate.mix) | set(counts)):
            share, want = counts.get(s, 0) / n, gate.mix.get(s, 0) / total_w
            # one example of rounding slack: 19 val examples cannot hit a 10.5% share exactly
            rows.append({"name": f"{split}:{s}", "kind": "setting", "share": round(share, 4), "expected": round(want, 4),
                         "within_tolerance": abs(share - want) <= gate.balance_tolerance + 1 / n})
        types = df["error_type"].dropna().value_counts().to_dict()
        if types:
            lo = min(types.values())
            for t, c in sorted(types.items()):
                rows.append({"name": f"{split}:{t}", "kind": "error_type", "share": round(c / sum(types.values()), 4),
                             "expected": None, "within_tolerance": c <= gate.max_type_ratio * lo + 1})
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class HeldOut:
    """What the test splits hold that training must never see, read from the splits themselves."""

    subjects: list[str]  # every test split's, the held-out domain's included
    domain_relations: list[str]
    domain_templates: list[str]

    @classmethod
    def of(cls, all_df: pd.DataFrame) -> "HeldOut":
        test = all_df[all_df["split"].str.startswith("test")]
        domain = all_df[all_df["split"] == OOD_DOMAIN]
        return cls(sorted(set(test["subject"])), sorted(set(domain["relation"])),
                   sorted(set(domain["question_template"].dropna())))


def build_suites(held: HeldOut, gate: GateParams, with_tokens: bool):
    import great_expectations as gx
    import great_expectations.expectations as gxe

    rows = gx.ExpectationSuite(name="kpref_splits")
    for col in REQUIRED:
        rows.add_expectation(gxe.ExpectColumnToExist(column=col))
        rows.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=col))
    rows.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="setting", value_set=list(SETTINGS)))
    rows.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="expected_source", value_set=list(SOURCES)))
    rows.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS)))
    rows.add_expectation(gxe.ExpectColumnValuesToBeInSet(column="error_type", value_set=list(ERROR_TYPES)))
    rows.add_expectation(gxe.ExpectColumnValuesToBeUnique(column="id"))
    rows.add_expectation(gxe.ExpectCompoundColumnsToBeUnique(column_list=["split", "prompt_key"],
                                                             meta={"why": "no duplicate prompts within a split"}))
    for col, why in CHECK_COLUMNS.items():
        if col == "within_token_limit" and not with_tokens:
            continue
        rows.add_expectation(gxe.ExpectColumnValuesToBeInSet(column=col, value_set=[True], meta={"why": why}))

    train = gx.ExpectationSuite(name="kpref_train_val")
    train.add_expectation(gxe.ExpectTableRowCountToBeBetween(min_value=1))
    leaks = (("subject", held.subjects, "test subjects (held-out domain's too) never occur in train/val"),
             ("relation", sorted(gate.ood_relations), "held-out relations never occur in train/val"),
             ("relation", held.domain_relations, "held-out-domain relations never occur in train/val"),
             ("question_template", sorted(gate.held_out_templates), "held-out phrasings never occur in train/val"),
             ("question_template", held.domain_templates, "held-out-domain wordings never occur in train/val"),
             ("assumption_style", sorted(gate.held_out_styles), "held-out assumption styles never occur in train/val"))
    for col, values, why in leaks:
        if values:
            train.add_expectation(gxe.ExpectColumnValuesToNotBeInSet(column=col, value_set=values, meta={"why": why}))
    train.add_expectation(gxe.ExpectColumnValuesToBeInSet(
        column="no_held_out_text", value_set=[True],
        meta={"why": "no context or instruction in train/val states a test subject's fact, a held-out relation "
                     "or a held-out domain's relation"}))

    balance = gx.ExpectationSuite(name="kpref_balance")
    balance.add_expectation(gxe.ExpectColumnValuesToBeInSet(
        column="within_tolerance", value_set=[True],
        meta={"why": "setting shares match the mix within validate.balance_tolerance; "
                     "error types within synthesize.pairs.max_type_ratio"}))
    return rows, train, balance


def _summarize(results, max_examples: int) -> list[dict]:
    out = []
    for r in results:
        cfg = r.expectation_config
        res = r.result or {}
        examples = []
        for ex in res.get("unexpected_index_list") or []:
            if isinstance(ex, dict):
                examples.append(ex.get("id") or ex.get("name") or ex)
            else:
                examples.append(ex)
        out.append({
            "expectation": cfg.type,
            "column": cfg.kwargs.get("column") or ",".join(cfg.kwargs.get("column_list") or []) or None,
            "why": (cfg.meta or {}).get("why"),
            "success": bool(r.success),
            "unexpected_count": res.get("unexpected_count"),
            "examples": [str(e) for e in examples[:max_examples]],
        })
    return out


def read_frames(data_dir: str | Path) -> dict[str, pd.DataFrame]:
    """Every split as a DataFrame; records lacking a required field are named by file."""
    frames = {}
    for split, rows in read_splits(data_dir).items():
        df = pd.DataFrame(rows)
        missing = [c for c in REQUIRED if c not in df.columns] if rows else []
        if missing:
            raise KprefError(f"{Path(data_dir) / f'{split}.jsonl'}: records lack field(s) {missing}")
        frames[split] = df
    return frames


def _checked_frames(frames: dict[str, pd.DataFrame], gate: GateParams, tokenizer, relations):
    """(all rows, train+val rows, balance rows), each with the columns the suites expect."""
    all_df = pd.concat([f for f in frames.values() if not f.empty], ignore_index=True)
    for col in ("bridge", "rejected", "error_type", "question_template", "assumption_style"):
        if col not in all_df.columns:
            all_df[col] = None
    all_df = derive_checks(all_df, tokenizer, gate.max_length)
    train_df = all_df[all_df["split"].isin(["train", "val"])].reset_index(drop=True)
    held = HeldOut.of(all_df)
    leak = (held_out_statements(relations, (*gate.ood_relations, *held.domain_relations), held.subjects)
            if relations is not None else None)
    train_df["no_held_out_text"] = [
        not (leak and any(leak.search(x) for x in [*c, i if isinstance(i, str) else ""]))
        for c, i in zip(train_df["contexts"], train_df["instruction"])
    ]
    return all_df, train_df, balance_table(train_df, gate), held


def _run_suites(frames, held: HeldOut, gate: GateParams, with_tokens: bool,
                docs_dir: str | Path) -> tuple[bool, dict]:
    """Run each suite as a GX checkpoint that also writes Data Docs; (all passed, results by suite)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")  # suites can only be built inside a context
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    suites = build_suites(held, gate, with_tokens)
    results, success = {}, True
    with atomic_dir(docs_dir) as docs_tmp:
        ctx.add_data_docs_site(site_name="kpref", site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(Path(docs_tmp).resolve())},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
        source = ctx.data_sources.add_pandas("splits")
        for (name, df, id_col), suite in zip(frames, suites):
            batch = source.add_dataframe_asset(name).add_batch_definition_whole_dataframe(name)
            vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=name, data=batch,
                                                                        suite=ctx.suites.add(suite)))
            checkpoint = ctx.checkpoints.add(gx.Checkpoint(
                name=f"kpref_{name}", validation_definitions=[vd],
                actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
                result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [id_col]},
            ))
            run = checkpoint.run(batch_parameters={"dataframe": df})
            success &= bool(run.success)
            results[name] = [x for v in run.run_results.values() for x in _summarize(v.results, gate.max_examples)]
    return success, results


def run_validation(data_dir: str | Path, summary_path: str | Path, docs_dir: str | Path, gate: GateParams,
                   tokenizer_dir: str | Path | None = None, relations: dict[str, Relation] | None = None) -> dict:
    frames = read_frames(data_dir)
    tokenizer = None
    if tokenizer_dir is not None and gate.max_length:
        from tasks.runtime.modeling import load_tokenizer

        tokenizer = load_tokenizer(tokenizer_dir)
    all_df, train_df, balance_df, held = _checked_frames(frames, gate, tokenizer, relations)
    plan = (("all_splits", all_df, "id"), ("train_val", train_df, "id"), ("balance", balance_df, "name"))
    success, results = _run_suites(plan, held, gate, tokenizer is not None, docs_dir)
    summary = {
        "success": success,
        "rows": {split: int(len(df)) for split, df in frames.items()},
        "n_expectations": sum(len(v) for v in results.values()),
        "n_failed": sum(not e["success"] for v in results.values() for e in v),
        "balance": balance_df.to_dict("records"),
        "results": results,
    }
    write_json(summary_path, summary)
    if not success:
        lines = [
            f"- {e['expectation']} on '{e['column']}'" + (f" ({e['why']})" if e["why"] else "")
            + f": {e['unexpected_count']} unexpected, e.g. {e['examples']}"
            for v in results.values() for e in v if not e["success"]
        ]
        raise KprefError("validate: the data quality gate failed; training will not start.\n" + "\n".join(lines))
    return summary
