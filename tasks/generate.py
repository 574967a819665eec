"""Batched greedy generation with a progress bar: probing, evaluation and `kpref answer`."""
from __future__ import annotations

from typing import Sequence

import torch
from tqdm.auto import tqdm


@torch.inference_mode()
def generate(model, tokenizer, prompts: Sequence[str], batch_size: int = 16, max_new_tokens: int = 24,
             desc: str = "generating") -> list[str]:
    """Greedy answers for already-rendered prompts, in input order.

    Prompts are batched by length so left padding stays short.
    """
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out: list[str | None] = [None] * len(prompts)
    device = next(model.parameters()).device
    with tqdm(total=len(prompts), desc=desc, unit="ex", leave=False) as bar:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
            batch = {k: v.to(device) for k, v in batch.items()}
            gen = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=tokenizer.pad_token_id,
            )
            texts = tokenizer.batch_decode(gen[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)
            for i, t in zip(idx, texts):
                out[i] = t.strip()
            bar.update(len(idx))
    return out  # type: ignore[return-value]
