"""The one prompt format, shared by probing, training, evaluation and `kpref answer`."""
from __future__ import annotations

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
