"""The one prompt format, shared by probing, training, the quality gate, evaluation and `kpref answer`."""
from __future__ import annotations

import hashlib
from typing import Sequence

ANSWER_HINT = "Answer with a short phrase."


def user_message(question: str, contexts: Sequence[str] = (), instruction: str | None = None) -> str:
    parts = []
    if instruction:
        parts.append(f"Instruction: {instruction}")
    if len(contexts) == 1:
        parts.append(f"Context: {contexts[0]}")
    elif contexts:
        parts.append("Context:\n" + "\n".join(f"[{i}] {c}" for i, c in enumerate(contexts, start=1)))
    parts.append(f"Question: {question}")
    parts.append(ANSWER_HINT)
    return "\n".join(parts)


def messages(question: str, contexts: Sequence[str] = (), instruction: str | None = None) -> list[dict]:
    return [{"role": "user", "content": user_message(question, contexts, instruction)}]


def render(tokenizer, question: str, contexts: Sequence[str] = (), instruction: str | None = None) -> str:
    """The exact text the model sees before its answer."""
    msgs = messages(question, contexts, instruction)
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    # Models without a chat template get a plain completion-style prompt.
    return msgs[0]["content"] + "\nAnswer:"


def prompt_ids(tokenizer, question: str, contexts: Sequence[str] = (), instruction: str | None = None) -> list[int]:
    """render()'s text as token ids: what TRL's SFT tokenizes before an example's completion."""
    return tokenizer(render(tokenizer, question, contexts, instruction), add_special_tokens=False)["input_ids"]


def prompt_key(question: str, instruction: str | None, contexts: Sequence[str]) -> str:
    """Identifies a prompt: two examples with one key ask the model the same thing."""
    return hashlib.sha1(repr((question, instruction, list(contexts))).encode()).hexdigest()


def conversation(record: dict) -> dict:
    """An example as TRL's conversational prompt/completion row (TRL applies the chat template
    and masks the prompt)."""
    return {
        "prompt": messages(record["question"], record["contexts"], record["instruction"]),
        "completion": [{"role": "assistant", "content": record["completion"]}],
    }


def preference(record: dict) -> dict:
    """An example with a typed pair as TRL's conversational prompt/chosen/rejected row."""
    return {
        "prompt": messages(record["question"], record["contexts"], record["instruction"]),
        "chosen": [{"role": "assistant", "content": record["completion"]}],
        "rejected": [{"role": "assistant", "content": record["rejected"]}],
    }
