"""The SFT trainer and the model it trains, as fast as each device allows: on the CPU the loss
projects only completion tokens through the LM head, and attention runs eagerly (train.attention)."""
from __future__ import annotations

from contextlib import contextmanager, nullcontext
from pathlib import Path

from tasks.launch import world_size
from tasks.modeling import Device
from tasks.schema import KprefError


def completion_logits(model, inputs: dict, autocast) -> tuple:
    """Logits of the positions that predict a completion token, and those tokens.

    Only these positions go through the LM head. SmolLM2's head (49k x 576) is a quarter of a
    training step's FLOPs, and a completion is a sixth of an example's tokens; TRL's fused head
    keeps to them only on Triton devices, and on the CPU scores every position in fp32.
    """
    labels = inputs["labels"][:, 1:]
    mask = labels != -100
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    backbone_inputs = {k: inputs[k] for k in ("input_ids", "attention_mask", "position_ids") if k in inputs}
    with autocast():
        hidden = base.base_model(**backbone_inputs, use_cache=False).last_hidden_state[:, :-1][mask]
        logits = base.get_output_embeddings()(hidden)
    return logits.float(), labels[mask]


# config fields by which some models scale or cap their logits after the head (Gemma 2, Granite,
# Cohere, ...): TRL's head applies them, completion_logits does not
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier",
                     "logits_scaling")


def plain_lm_head(config) -> bool:
    """Whether the model's logits are its head's output as is (true of Llama, SmolLM2, Qwen, Mistral)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return all(getattr(text, name, None) is None for name in _LOGIT_TRANSFORMS)


def reprompted(inputs: dict, rows, prompts) -> dict:
    """The batch's `rows` with each one's prompt swapped for `prompts[row]` (token ids): those tokens,
    then the row's completion tokens, right-padded, the completion alone labelled. Its completion
    positions come in the same order and number as the rows' own."""
    import torch

    seqs, labels = [], []
    for r in rows.tolist():
        completion = inputs["input_ids"][r][inputs["labels"][r] != -100]
        prompt = prompts[r].to(completion.device)
        seqs.append(torch.cat([prompt, completion]))
        labels.append(torch.cat([torch.full_like(prompt, -100), completion]))
    ids = torch.zeros(len(seqs), max(map(len, seqs)), dtype=torch.long, device=seqs[0].device)
    out = {"input_ids": ids, "attention_mask": torch.zeros_like(ids), "labels": torch.full_like(ids, -100)}
    for i, (seq, lab) in enumerate(zip(seqs, labels)):
        out["input_ids"][i, :len(seq)], out["attention_mask"][i, :len(seq)], out["labels"][i, :len(seq)] = seq, 1, lab
    return out


def teacher_kl(model, inputs: dict, rows_on, logp, autocast, prompts=None, base: bool = True) -> tuple:
    """KL(teacher || model) at each completion position of the rows `rows_on` marks, and which
    positions those are. The teacher reads the same completion after the same prompt, or after
    `prompts[row]` where given; it is the base (`model` with its adapter off) or, with `base` false,
    `model` itself, held fixed (no gradient). `logp` holds the model's log-probabilities at every
    completion position of the batch, in completion_logits' order."""
    import torch

    rows = rows_on.nonzero()[:, 0]
    sub = (reprompted(inputs, rows, prompts) if prompts is not None else
           {k: v[rows] for k, v in inputs.items() if k in ("input_ids", "attention_mask", "position_ids", "labels")})
    with torch.no_grad(), model.disable_adapter() if base else nullcontext():
        ref, _ = completion_logits(model, sub, autocast)
    on = _positions(inputs, rows_on)
    return _kl(torch.log_softmax(ref, -1), logp[on]), on


def _positions(inputs: dict, rows_on):
    """Which of the batch's completion positions belong to the rows `rows_on` marks: completion_logits
    orders positions row by row, so those rows' positions come in the same order."""
    return rows_on[(inputs["labels"][:, 1:] != -100).nonzero()[:, 0]]


def _kl(teacher_logp, student_logp):
    return (teacher_logp.exp() * (teacher_logp - student_logp)).sum(-1)


def passage_kl(model, inputs: dict, rows_on, logp, autocast, prompts):
    """KL(model reading each marked row's own prompt || model reading `prompts[row]`) at its completion
    positions: teacher_kl the other way round. The side that learns is the model reading `prompts`
    (the question alone); the batch's own log-probabilities `logp`, passage and all, are held fixed."""
    import torch

    closed, _ = completion_logits(model, reprompted(inputs, rows_on.nonzero()[:, 0], prompts), autocast)
    return _kl(logp[_positions(inputs, rows_on)].detach(), torch.log_softmax(closed, -1))


def completion_head_trainer(anchor_weight: float = 0.0, consistency_weight: float = 0.0,
                            consistency_teacher: str = "closed_book"):
    """SFTTrainer whose loss projects only completion tokens through the LM head (completion_logits):
    1.47x faster steps on 2 CPU cores, the same loss (docs/decisions.md). With `anchor_weight`, the
    rows a batch marks `anchor` are distilled from the base instead of trained on their text, the
    base reading each row's `teacher_prompt` where the batch has one (train.anchor). With
    `consistency_weight`, the rows marked `consistent` also cost the KL from the model itself reading
    their `teacher_prompt`, the question alone (train.consistency_weight), or with
    `consistency_teacher` "passage" the KL to the model reading the question alone from the model
    reading the row (train.consistency_teacher)."""
    import torch
    from trl import SFTTrainer

    flagged = bool(anchor_weight or consistency_weight)

    class CompletionHeadSFTTrainer(SFTTrainer):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            if flagged:  # the rows' flags reach compute_loss through the batch
                self.data_collator = FlagCollator(self.data_collator)

        def _set_signature_columns_if_needed(self):
            super()._set_signature_columns_if_needed()
            if flagged:
                missing = [c for c in FLAG_COLUMNS if c not in self._signature_columns]
                self._signature_columns = [*self._signature_columns, *missing]

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            anchored, consistent, prompts = (inputs.pop(c, None) for c in FLAG_COLUMNS)
            if return_outputs:  # callers that want the full logits get TRL's own path
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            autocast = self.accelerator.autocast
            logits, target = completion_logits(model, inputs, autocast)
            logp = torch.log_softmax(logits, -1)
            nll = -logp.gather(-1, target[:, None])[:, 0]
            metrics = self._metrics["train" if model.training else "eval"]
            keep, extra = torch.ones_like(nll, dtype=torch.bool), 0.0
            if anchored is not None and anchored.any():
                kl, on = teacher_kl(model, inputs, anchored, logp, autocast, prompts)
                metrics["anchor_kl"].append(kl.mean().item())
                keep, extra = ~on, anchor_weight * kl.sum()
            if consistent is not None and consistent.any():
                kl = (passage_kl(model, inputs, consistent, logp, autocast, prompts)
                      if consistency_teacher == "passage" else
                      teacher_kl(model, inputs, consistent, logp, autocast, prompts, base=False)[0])
                metrics["consistency_kl"].append(kl.mean().item())
                extra = extra + consistency_weight * kl.sum()
            loss = nll[keep].sum() + extra
            n = target.numel() if num_items_in_batch is None else num_items_in_batch
            with torch.no_grad():  # the curves TRL logs for SFT
                valid = max(target.numel(), 1)
                metrics["entropy"].append(-(logp.exp() * logp).sum().item() / valid)
                metrics["mean_token_accuracy"].append((logp.argmax(-1) == target).sum().item() / valid)
            return loss / torch.as_tensor(n).clamp(min=1)

    return CompletionHeadSFTTrainer


# the dataset columns the anchor and the consistency term read: each row's flags, and the prompt its
# teacher reads (token ids; optional)
FLAG_COLUMNS = ("anchor", "consistent", "teacher_prompt")


class FlagCollator:
    """TRL's collator, with each row's `anchor` and `consistent` flags, and its `teacher_prompt`,
    carried into the batch where the rows have them."""

    def __init__(self, inner):
        self.inner = inner

    def __call__(self, examples: list[dict]) -> dict:
        import torch

        batch = self.inner([{k: v for k, v in e.items() if k not in FLAG_COLUMNS} for e in examples])
        for flag in ("anchor", "consistent"):
            if flag in examples[0]:
                batch[flag] = torch.tensor([bool(e[flag]) for e in examples])
        if "teacher_prompt" in examples[0]:
            batch["teacher_prompt"] = [torch.tensor(e["teacher_prompt"], dtype=torch.long) for e in examples]
        return batch


def sft_trainer_class(device, config, anchor_weight: float = 0.0, consistency_weight: float = 0.0,
                      consistency_teacher: str = "closed_book"):
    """On Triton devices TRL's fused head already keeps to the completion; elsewhere ours does, in
    one process (it calls the backbone directly, past DistributedDataParallel's gradient sync). The
    anchor and the consistency term are ours alone, so with either ours runs on every device."""
    from trl import SFTTrainer

    ours = plain_lm_head(config) and world_size() == 1
    for key, weight in (("train.anchor.weight", anchor_weight), ("train.consistency_weight", consistency_weight)):
        if weight and not ours:
            raise KprefError(f"{key}: this loss needs one training process and a model whose logits are its head's "
                             "output (Llama, SmolLM2, Qwen, Mistral); set it to 0 for this run")
    if ours and (anchor_weight or consistency_weight or device.name != "cuda"):
        return completion_head_trainer(anchor_weight, consistency_weight, consistency_teacher)
    return SFTTrainer


def attention_kernel(choice: str, device: Device) -> str | None:
    """train.attention as transformers takes it; None leaves the choice to transformers (sdpa where the
    model has it). On the CPU, torch's flash-attention backward took 12 ms a layer on the default's
    batches, and with it a step 1.32x as long as eager attention's (benchmarks/bench_train_step.py)."""
    if choice != "auto":
        return choice
    return "eager" if device.name == "cpu" else None


def load_trainable(base_dir: str | Path, attention: str, device: Device):
    """The base model to train: fp32 master weights everywhere (bf16 is autocast)."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, use_safetensors=True,
                                                attn_implementation=attention_kernel(attention, device))


@contextmanager
def frozen_weights_in(model, device: Device):
    """Under bf16 autocast on the CPU, the frozen weights the LoRA adapts held in bf16 while training.

    Autocast casts each fp32 weight to bf16 at every forward; held in bf16 they are the same bf16
    numbers, so training computes bit for bit what it did (tests/test_train.py), 1.04-1.08x faster a step
    on a 2-core AMX CPU (benchmarks/bench_train_step.py). Only the base layers of LoRA modules: norms
    and embeddings, which autocast leaves in fp32, stay so. The fp32 weights come back on exit, for
    the merge. One process only: DistributedDataParallel keeps its own view of the parameters."""
    import torch

    held = []
    if device.name == "cpu" and device.bf16 and world_size() == 1:
        for module in model.modules():
            layer = getattr(module, "base_layer", None)
            if isinstance(layer, torch.nn.Linear) and not layer.weight.requires_grad:
                held.append((layer.weight, layer.weight.data))
                layer.weight.data = layer.weight.data.to(torch.bfloat16)
    try:
        yield len(held)
    finally:
        for weight, data in held:
            weight.data = data
