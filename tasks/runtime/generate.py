"""Batched greedy generation with a progress bar: probing, evaluation and `kpref answer`."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Hashable, Sequence

import torch
from tqdm.auto import tqdm

from tasks.runtime.modeling import cache_keyword


@dataclass(frozen=True)
class Answer:
    text: str
    entropy: float  # nats, of the distribution over the first answer token: how sure the model starts
    # the mean probability of the answer's tokens (to its end of turn): how sure the model is of all of
    # it, ClashEval's measure of a prior
    probability: float = float("nan")


def _entropy(logits: torch.Tensor) -> list[float]:
    logp = torch.log_softmax(logits.float(), dim=-1)
    return (-(logp.exp() * logp).sum(dim=-1)).tolist()


def _batches(tokenizer, prompts: Sequence[str], batch_size: int, desc: str, device):
    """Prompts batched by length, so left padding stays short: (their indices, the batch)."""
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    with tqdm(total=len(prompts), desc=desc, unit="ex", leave=False) as bar:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            batch = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
            yield idx, {k: v.to(device) for k, v in batch.items()}
            bar.update(len(idx))


def _greedy(model, tokenizer, batch: dict, max_new_tokens: int):
    return model.generate(
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


def _token_probability(tokenizer, gen, prompt_len: int) -> list[float]:
    """The mean probability of each row's generated tokens, up to (not counting) its end of turn."""
    toks = gen.sequences[:, prompt_len:]
    logp = torch.log_softmax(torch.stack(gen.logits, 1).float(), dim=-1).gather(-1, toks[..., None])[..., 0]
    ends = {t for t in (tokenizer.eos_token_id, tokenizer.pad_token_id) if t is not None}
    done = torch.zeros_like(toks, dtype=torch.bool)
    for t in ends:
        done |= toks == t
    alive = done.cumsum(-1) == 0
    alive[:, 0] = True  # an answer that ends at once is as sure as its end token
    return ((logp.exp() * alive).sum(-1) / alive.sum(-1)).tolist()


def _answers(tokenizer, gen, prompt_len: int, probability: bool = False) -> list[Answer]:
    texts = tokenizer.batch_decode(gen.sequences[:, prompt_len:], skip_special_tokens=True)
    # a softmax over the vocabulary at every step: only for the callers that read it
    probs = _token_probability(tokenizer, gen, prompt_len) if probability else [float("nan")] * len(texts)
    return [Answer(t.strip(), round(h, 4), float(f"{p:.6g}")) for t, h, p in zip(texts, _entropy(gen.logits[0]), probs)]


@torch.inference_mode()
def generate_answers(model, tokenizer, prompts: Sequence[str], batch_size: int = 16, max_new_tokens: int = 24,
                     desc: str = "generating", groups: Sequence[Sequence[int]] | None = None,
                     prefix_keys: Sequence[Hashable] | None = None, probability: bool = False) -> list[Answer]:
    """Greedy answers for already-rendered prompts, in input order, each with the entropy of its
    first token (from the same forward pass: free). `groups`: the batches as lists of indices,
    when a caller needs them fixed (batched low-precision arithmetic depends on a prompt's
    batch-mates), each running the opening its prompts share once; else batches of `batch_size`
    by length. `prefix_keys`: prompts with one key
    share their opening (the same passages or instruction before another question); where that
    saves work, each shared opening is run through the model once (shared_prefix_plan).
    `probability`: fill each answer's `probability` (else NaN)."""
    out: list[Answer | None] = [None] * len(prompts)
    device = next(model.parameters()).device
    plan = None
    if prompts and (groups is not None or prefix_keys is not None):
        ids = tokenizer(list(prompts), add_special_tokens=False)["input_ids"]
        plan = ([[Run(tuple(idx), _opening(ids, idx))] for idx in groups] if groups is not None
                else shared_prefix_plan(ids, prefix_keys, batch_size))
    if plan is not None:
        with tqdm(total=len(prompts), desc=desc, unit="ex", leave=False) as bar:
            for runs in plan:
                for i, a in zip([i for run in runs for i in run.rows],
                                _generate_shared(model, tokenizer, ids, runs, max_new_tokens, device, probability)):
                    out[i] = a
                bar.update(sum(len(run.rows) for run in runs))
        return out  # type: ignore[return-value]
    for idx, batch in _batches(tokenizer, prompts, batch_size, desc, device):
        gen = _greedy(model, tokenizer, batch, max_new_tokens)
        for i, a in zip(idx, _answers(tokenizer, gen, batch["input_ids"].shape[1], probability)):
            out[i] = a
    return out  # type: ignore[return-value]


@dataclass(frozen=True)
class Run:
    """Prompts (indices) whose first `shared` tokens are the same."""
    rows: tuple[int, ...]
    shared: int


def shared_prefix_plan(ids: Sequence[Sequence[int]], keys: Sequence[Hashable],
                       batch_size: int) -> list[list[Run]] | None:
    """Batches of runs that share an opening, or None when plain length-sorted batching runs
    fewer token positions through the model (then nothing is gained, and the batching, which
    low-precision answers depend on, stays as it was).

    A run is the prompts of one key, at most `batch_size` of them; it shares the tokens all its
    prompts begin with, less one, so each prompt still has a token of its own to start from.
    Prompts alone with their key still share the chat template's opening: they make runs of
    like length together. Runs of like opening length share a batch, so the openings' left
    padding stays short."""
    by_key: dict[Hashable, list[int]] = {}
    for i, k in enumerate(keys):
        by_key.setdefault(k, []).append(i)
    groups = [rows for rows in by_key.values() if len(rows) > 1]
    alone = [rows[0] for rows in by_key.values() if len(rows) == 1]
    runs = []
    for rows in groups + [alone] if alone else groups:
        rows = sorted(rows, key=lambda i: len(ids[i]))
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            runs.append(Run(tuple(chunk), _opening(ids, chunk)))
    runs.sort(key=lambda r: (r.shared, len(r.rows)))
    batches: list[list[Run]] = [[]]
    for run in runs:
        if batches[-1] and sum(len(r.rows) for r in batches[-1]) + len(run.rows) > batch_size:
            batches.append([])
        batches[-1].append(run)

    def padded(batch: list[Run]) -> int:
        rows = [i for r in batch for i in r.rows]
        tail = max(len(ids[i]) - r.shared for r in batch for i in r.rows)
        return len(batch) * max(r.shared for r in batch) + len(rows) * tail

    by_length = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    plain = sum(len(chunk) * len(ids[chunk[-1]]) for chunk in
                (by_length[s : s + batch_size] for s in range(0, len(ids), batch_size)))
    return batches if sum(padded(b) for b in batches) < plain else None


def _opening(ids: Sequence[Sequence[int]], rows: Sequence[int]) -> int:
    """The tokens all `rows` begin with, less one, so each prompt still has a token of its own."""
    # os.path.commonprefix compares any sequences item by item, token ids included
    shared = min([len(ids[i]) - 1 for i in rows] + [len(os.path.commonprefix([ids[i] for i in rows]))])
    return max(shared, 0)


def _left_padded(seqs: Sequence[Sequence[int]], pad: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in seqs)
    ids = torch.tensor([[pad] * (width - len(s)) + list(s) for s in seqs], device=device)
    mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=device)
    return ids, mask


def _generate_shared(model, tokenizer, ids: Sequence[Sequence[int]], runs: list[Run], max_new_tokens: int,
                     device, probability: bool = False) -> list[Answer]:
    """One batch of runs: each run's opening through the model once, its key/value cache
    repeated over the run's prompts, then each prompt's own tokens and the answer. A row reads
    [padding, opening, padding, own tokens]; the mask hides the padding and positions count
    only what it shows, so each prompt is computed as if alone."""
    pad = tokenizer.pad_token_id
    head_ids, head_mask = _left_padded([ids[r.rows[0]][: r.shared] or [pad] for r in runs], pad, device)
    head_mask[[k for k, r in enumerate(runs) if r.shared == 0]] = 0
    cache_kw = cache_keyword(model)
    positions = (head_mask.cumsum(-1) - 1).clamp(min=0)
    head = model(input_ids=head_ids, attention_mask=head_mask, position_ids=positions, use_cache=True,
                 logits_to_keep=1)
    cache = getattr(head, cache_kw)
    run_of = torch.tensor([k for k, r in enumerate(runs) for _ in r.rows], device=device)
    cache.batch_select_indices(run_of)
    tail_ids, tail_mask = _left_padded([ids[i][r.shared :] for r in runs for i in r.rows], pad, device)
    batch = {"input_ids": torch.cat([head_ids[run_of], tail_ids], 1),
             "attention_mask": torch.cat([head_mask[run_of], tail_mask], 1), cache_kw: cache}
    return _answers(tokenizer, _greedy(model, tokenizer, batch, max_new_tokens), batch["input_ids"].shape[1],
                    probability)


def generate(model, tokenizer, prompts: Sequence[str], batch_size: int = 16, max_new_tokens: int = 24,
             desc: str = "generating", groups: Sequence[Sequence[int]] | None = None) -> list[str]:
    """Greedy answers for already-rendered prompts, in input order (`groups` as generate_answers)."""
    return [a.text for a in generate_answers(model, tokenizer, prompts, batch_size, max_new_tokens, desc, groups)]


def first_token_entropy(model, tokenizer, prompts: Sequence[str], batch_size: int = 16, desc: str = "scoring",
                        prefix_keys: Sequence[Hashable] | None = None) -> list[float]:
    """The entropy of the first answer token's distribution, for prompts whose answer is not
    needed: one forward pass each, an opening shared by `prefix_keys` once (generate_answers)."""
    return [a.entropy for a in generate_answers(model, tokenizer, prompts, batch_size, 1, desc,
                                                prefix_keys=prefix_keys)]
