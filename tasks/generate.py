"""Batched greedy generation with a progress bar: probing, evaluation and `kpref answer`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from tqdm.auto import tqdm


@dataclass(frozen=True)
class Answer:
    text: str
    entropy: float  # nats, of the distribution over the first answer token: how sure the model starts


def _entropy(logits: torch.Tensor) -> list[float]:
    logp = torch.log_softmax(logits.float(), dim=-1)
    return (-(logp.exp() * logp).sum(dim=-1)).tolist()


def _batches(tokenizer, prompts: Sequence[str], batch_size: int, desc: str, device,
             groups: Sequence[Sequence[int]] | None = None):
    """Prompts batched by length, so left padding stays short, or as `groups` of indices says:
    (their indices, the batch)."""
    if groups is None:
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        groups = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    with tqdm(total=len(prompts), desc=desc, unit="ex", leave=False) as bar:
        for idx in groups:
            batch = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
            yield idx, {k: v.to(device) for k, v in batch.items()}
            bar.update(len(idx))


@torch.inference_mode()
def generate_answers(model, tokenizer, prompts: Sequence[str], batch_size: int = 16, max_new_tokens: int = 24,
                     desc: str = "generating", groups: Sequence[Sequence[int]] | None = None) -> list[Answer]:
    """Greedy answers for already-rendered prompts, in input order, each with the entropy of its
    first token (from the same forward pass: free). `groups`: the batches as lists of indices,
    when a caller needs them fixed (batched low-precision arithmetic depends on a prompt's
    batch-mates); else batches of `batch_size` by length."""
    out: list[Answer | None] = [None] * len(prompts)
    device = next(model.parameters()).device
    for idx, batch in _batches(tokenizer, prompts, batch_size, desc, device, groups):
        gen = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=tokenizer.pad_token_id,
            output_logits=True,
            return_dict_in_generate=True,
        )
        texts = tokenizer.batch_decode(gen.sequences[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
        for i, t, h in zip(idx, texts, _entropy(gen.logits[0])):
            out[i] = Answer(t.strip(), round(h, 4))
    return out  # type: ignore[return-value]


def generate(model, tokenizer, prompts: Sequence[str], batch_size: int = 16, max_new_tokens: int = 24,
             desc: str = "generating", groups: Sequence[Sequence[int]] | None = None) -> list[str]:
    """Greedy answers for already-rendered prompts, in input order (`groups` as generate_answers)."""
    return [a.text for a in generate_answers(model, tokenizer, prompts, batch_size, max_new_tokens, desc, groups)]


@torch.inference_mode()
def first_token_entropy(model, tokenizer, prompts: Sequence[str], batch_size: int = 16,
                        desc: str = "scoring") -> list[float]:
    """The entropy of the first answer token's distribution, from one forward pass (no decoding):
    for prompts whose answer is not needed."""
    out: list[float] = [0.0] * len(prompts)
    for idx, batch in _batches(tokenizer, prompts, batch_size, desc, next(model.parameters()).device):
        # positions as generate() counts them under left padding, so the figure is the one it would see
        positions = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        for i, h in zip(idx, _entropy(model(**batch, position_ids=positions).logits[:, -1, :])):
            out[i] = round(h, 4)
    return out
