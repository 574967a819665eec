"""The quality gate's checks of each row: that its target is the answer of the source the
hierarchy picks and stands in that source's text, that its DPO pair is of its setting's error type,
and that its prompt fits the model (tasks/validate.py runs them in its suites)."""
from __future__ import annotations

import pandas as pd

from tasks.core.metrics import matches, normalize
from tasks.core.prompt import conversation, prompt_key
from tasks.core.schema import CARRIER_ERROR, CONFLICT_SETTINGS, ERROR_TYPES, SETTINGS


def _contains(text: str | None, answer: str | None) -> bool:
    # the same whole-word rule evaluation scores answers by; None-safe for absent sources
    return bool(text and answer) and matches(text, [answer])


def _source_text(row) -> list[str]:
    if row.expected_source == "instruction":
        return [row.instruction] if row.instruction else []
    if row.expected_source == "context":
        return list(row.contexts)
    return []


def _source_fits_setting(setting: str, source: str) -> bool:
    spec = SETTINGS.get(setting)
    if spec is None:
        return False
    return source in CARRIER_ERROR if spec.source is None else source == spec.source


def _target_in_source_text(row) -> bool:
    if row.expected_source == "parametric":
        return True  # memory has no text to check
    # multi-hop: the edit names the bridge entity, not the composed answer
    needle = row.bridge if row.setting == "multi_hop" else row.target
    return any(_contains(t, needle) for t in _source_text(row))


def _rejected_ok(row) -> bool:
    """A DPO pair's rejected answer is of its setting's error type and says that type's wrong answer."""
    if not isinstance(row.error_type, str):
        return row.rejected is None or pd.isna(row.rejected)
    if row.error_type not in ERROR_TYPES or not isinstance(row.rejected, str):
        return False
    if normalize(row.rejected) == normalize(row.completion) or _contains(row.rejected, row.target):
        return False
    spec = SETTINGS.get(row.setting)
    if spec is None:
        return False
    expected = CARRIER_ERROR.get(row.expected_source) if spec.source is None else spec.error_type
    wrong = {
        "contextual_ignorance": row.world_answer,  # answered from memory despite a relevant passage
        "contextual_overinclusion": row.answers.get("distractor"),  # copied an irrelevant passage
        "instruction_neglect": row.answers.get("context") or row.world_answer,  # followed context or memory instead
    }[row.error_type]
    return row.error_type == expected and _contains(row.rejected, wrong)


def _token_counter(tokenizer):
    def n_tokens(record: dict) -> int:
        conv = conversation(record)
        text = tokenizer.apply_chat_template(conv["prompt"] + conv["completion"], tokenize=False)
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    return n_tokens


def derive_checks(df: pd.DataFrame, tokenizer=None, max_length: int | None = None) -> pd.DataFrame:
    """Per-row facts about the hierarchy that the suite then expects to hold (one boolean column each)."""
    df = df.copy()
    rows = list(df.itertuples())
    src_answer = [a.get(s) if isinstance(a, dict) else None for a, s in zip(df["answers"], df["expected_source"])]
    df["target_is_source_answer"] = [t == a for t, a in zip(df["target"], src_answer)]
    df["source_matches_setting"] = [_source_fits_setting(r.setting, r.expected_source) for r in rows]
    df["target_in_source_text"] = [_target_in_source_text(r) for r in rows]
    df["conflict_differs_from_world"] = [
        s not in CONFLICT_SETTINGS or normalize(t) != normalize(w)
        for s, t, w in zip(df["setting"], df["target"], df["world_answer"])
    ]
    df["instruction_differs_from_context"] = [
        s != "instr_vs_ctx" or (a.get("instruction") != a.get("context")) for s, a in zip(df["setting"], df["answers"])
    ]
    df["completion_states_target"] = [_contains(c, t) for c, t in zip(df["completion"], df["target"])]
    df["rejected_matches_error_type"] = [_rejected_ok(r) for r in rows]
    df["prompt_key"] = [prompt_key(q, i, c) for q, i, c in zip(df["question"], df["instruction"], df["contexts"])]
    if tokenizer is not None and max_length:
        n_tokens = _token_counter(tokenizer)
        df["within_token_limit"] = [n_tokens(r) <= max_length for r in df.to_dict("records")]
    return df


CHECK_COLUMNS = {
    "target_is_source_answer": "target is the answer of the source the hierarchy picks",
    "source_matches_setting": "expected_source is the one the setting's hierarchy names",
    "target_in_source_text": "the picked source's text states the target (multi-hop: the bridge)",
    "conflict_differs_from_world": "conflict targets differ from the world's answer",
    "instruction_differs_from_context": "in instr_vs_ctx, instruction and context disagree",
    "completion_states_target": "the training completion states the target",
    "rejected_matches_error_type": "a DPO rejected answer is wrong in the way its setting's error type names",
    "within_token_limit": "prompt + completion fit train.max_length tokens",
}
