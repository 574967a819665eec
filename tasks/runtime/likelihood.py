"""How probable a model finds a given answer after a prompt: teacher-forced, one forward pass a batch.

The probe's measure of how sure the base model is of a fact (tasks/probe.py): the answer is not
generated but read in, so a fact the model knows well but would word otherwise still counts.
"""
from __future__ import annotations

import math
import os
from typing import Sequence

import torch
from tqdm.auto import tqdm

from tasks.runtime.modeling import cache_keyword


@torch.inference_mode()
def answer_probability(model, tokenizer, prompts: Sequence[str], answers: Sequence[str],
                       groups: Sequence[Sequence[int]], desc: str = "scoring") -> list[float]:
    """The probability of each answer's tokens, all of them, right after its prompt (the product
    of their conditional probabilities), in input order. `groups`: the batches as lists of
    indices, fixed by the caller (a bf16 figure depends on its batch-mates' shapes, as
    generation does). Prompt and answer are tokenized apart and joined, so the answer's tokens
    are the ones it has on its own (" Paris" after "... is", not whatever a merge would give).
    The opening a batch's rows share (the chat template, the question's first words) runs
    through the model once, its keys and values repeated over the rows, as generation's does."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    cache_kw = cache_keyword(model)
    out: list[float | None] = [None] * len(prompts)
    with tqdm(total=sum(len(g) for g in groups), desc=desc, unit="ex", leave=False) as bar:
        for idx in groups:
            heads = [tokenizer(prompts[i], add_special_tokens=False)["input_ids"] for i in idx]
            tails = [tokenizer(answers[i], add_special_tokens=False)["input_ids"] for i in idx]
            if any(not t for t in tails):
                raise ValueError("answer_probability: an empty answer has no probability to measure")
            seqs = [h + t for h, t in zip(heads, tails)]
            # the shared opening ends before any prompt's last token, which predicts the answer's first
            shared = min([len(os.path.commonprefix(seqs))] + [len(h) - 1 for h in heads])
            kw = {}
            if shared > 0:
                opening = model(input_ids=torch.tensor([seqs[0][:shared]], device=device), use_cache=True)
                cache = getattr(opening, cache_kw)
                cache.batch_select_indices(torch.zeros(len(idx), dtype=torch.long, device=device))
                kw[cache_kw] = cache
            rest = [s[shared:] for s in seqs]
            width = max(len(r) for r in rest)
            # right padding: a causal model's positions before the padding see none of it
            ids = torch.tensor([r + [pad] * (width - len(r)) for r in rest], device=device)
            mask = torch.tensor([[1] * (shared + len(r)) + [0] * (width - len(r)) for r in rest], device=device)
            positions = torch.arange(shared, shared + width, device=device).expand(len(idx), -1)
            logits = model(input_ids=ids, attention_mask=mask, position_ids=positions, **kw).logits
            for row, (i, h, t) in enumerate(zip(idx, heads, tails)):
                # the logits at position p predict token p + 1: the answer's from the prompt's last token on
                start = len(h) - 1 - shared
                logp = torch.log_softmax(logits[row, start : start + len(t)].float(), dim=-1)
                total = logp.gather(-1, torch.tensor(t, device=device)[:, None]).sum().item()
                out[i] = math.exp(total)
            bar.update(len(idx))
    return out  # type: ignore[return-value]
