"""The SFT trainer and the model it trains, as fast as each device allows: on the CPU the loss
projects only completion tokens through the LM head, a batch's shared opening runs once, and
attention runs eagerly (train.attention)."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from tasks.runtime.modeling import Device, cache_keyword
from tasks.training.launch import world_size


def completion_logits(model, inputs: dict, autocast) -> tuple:
    """Logits of the positions that predict a completion token, and those tokens.

    Only these positions go through the LM head. SmolLM2's head (49k x 576) is a quarter of a
    training step's FLOPs, and a completion is a sixth of an example's tokens; TRL's fused head
    keeps to them only on Triton devices, and on the CPU scores every position in fp32.
    The opening every row of the batch shares (the chat template's system prompt) runs through
    the model once, not once a row (shared_opening; docs/decisions.md).
    """
    labels = inputs["labels"][:, 1:]
    mask = labels != -100
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    backbone_inputs = {k: inputs[k] for k in ("input_ids", "attention_mask", "position_ids") if k in inputs}
    # gradient checkpointing recomputes each layer without a key/value cache: every row whole then
    checkpointing = getattr(base.base_model, "gradient_checkpointing", False)
    shared = 0 if checkpointing else shared_opening(inputs["input_ids"], inputs.get("attention_mask"),
                                                    inputs["labels"])
    with autocast():
        if shared:
            hidden = _hidden_after_opening(base.base_model, backbone_inputs, shared)[:, :-1][mask[:, shared:]]
        else:
            hidden = base.base_model(**backbone_inputs, use_cache=False).last_hidden_state[:, :-1][mask]
        logits = base.get_output_embeddings()(hidden)
    return logits.float(), labels[mask]


# below this many shared tokens a second forward call costs more than it saves
_MIN_SHARED = 8


def shared_opening(input_ids, attention_mask, labels) -> int:
    """How many opening tokens every row shares, unpadded, before the position that predicts the
    row's first completion token (so every scored position lies after them); 0 when too few to pay."""
    import torch

    if input_ids.shape[0] < 2:
        return 0
    same = (input_ids == input_ids[:1]).all(0)
    if attention_mask is not None:
        same &= (attention_mask == 1).all(0)
    n = int(torch.cumprod(same.int(), 0).sum())
    first_scored = int((labels != -100).int().argmax(1).min())  # the first completion token's index
    n = min(n, first_scored - 1)
    return n if n >= _MIN_SHARED else 0


def _hidden_after_opening(backbone, inputs: dict, shared: int):
    """The backbone's last hidden states from position `shared` on: the shared opening runs once,
    batch of one, and every row attends to its keys and values (repeated, so each row's gradient
    flows back into the one opening). The same function as one full forward, to rounding."""
    rows = inputs["input_ids"].shape[0]
    cache_kw = cache_keyword(backbone)
    head = {k: v[:1, :shared] for k, v in inputs.items()}
    cache = getattr(backbone(**head, use_cache=True), cache_kw)
    cache.batch_repeat_interleave(rows)
    rest = {k: v[:, shared:] for k, v in inputs.items() if k != "attention_mask"}
    if "attention_mask" in inputs:
        rest["attention_mask"] = inputs["attention_mask"]  # the opening's positions too
    return backbone(**rest, **{cache_kw: cache}, use_cache=True).last_hidden_state


# config fields by which some models scale or cap their logits after the head (Gemma 2, Granite,
# Cohere, ...): TRL's head applies them, completion_logits does not
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "output_multiplier", "lm_head_multiplier",
                     "logits_scaling")


def plain_lm_head(config) -> bool:
    """Whether the model's logits are its head's output as is (true of Llama, SmolLM2, Qwen, Mistral)."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    return all(getattr(text, name, None) is None for name in _LOGIT_TRANSFORMS)


def completion_head_trainer():
    """SFTTrainer whose loss projects only completion tokens through the LM head (completion_logits):
    faster steps on the CPU, the same loss (tests/test_train.py; docs/decisions.md)."""
    import torch
    from trl import SFTTrainer

    class CompletionHeadSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if return_outputs:  # callers that want the full logits get TRL's own path
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            logits, target = completion_logits(model, inputs, self.accelerator.autocast)
            logp = torch.log_softmax(logits, -1)
            loss = -logp.gather(-1, target[:, None])[:, 0].sum()
            n = target.numel() if num_items_in_batch is None else num_items_in_batch
            metrics = self._metrics["train" if model.training else "eval"]
            with torch.no_grad():  # the curves TRL logs for SFT
                valid = max(target.numel(), 1)
                metrics["entropy"].append(-(logp.exp() * logp).sum().item() / valid)
                metrics["mean_token_accuracy"].append((logp.argmax(-1) == target).sum().item() / valid)
            return loss / torch.as_tensor(n).clamp(min=1)

    return CompletionHeadSFTTrainer


def sft_trainer_class(device, config):
    """On Triton devices TRL's fused head already keeps to the completion; elsewhere ours does, in
    one process (it calls the backbone directly, past DistributedDataParallel's gradient sync)."""
    from trl import SFTTrainer

    if plain_lm_head(config) and world_size() == 1 and device.name != "cuda":
        return completion_head_trainer()
    return SFTTrainer


def attention_kernel(choice: str, device: Device) -> str | None:
    """train.attention as transformers takes it; None leaves the choice to transformers (sdpa where the
    model has it). On the CPU torch's flash-attention backward is slower than eager attention on
    the default's short rows (docs/decisions.md)."""
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
    """Under bf16 autocast on the CPU, the frozen weights the LoRA adapts held in bf16 while training,
    and no cast of a LoRA layer's input to its fp32 weights' dtype.

    Autocast casts each fp32 weight to bf16 at every forward; held in bf16 they are the same bf16
    numbers, so training computes bit for bit what it did (tests/test_train.py), faster
    (docs/decisions.md). PEFT casts a bf16 input (of o_proj and
    down_proj) to fp32 before its LoRA, which autocast casts straight back: the same bits, two
    copies a layer and their backward. Only the base layers of LoRA modules: norms and embeddings,
    which autocast leaves in fp32, stay so. The fp32 weights come back on exit, for the merge. One
    process only: DistributedDataParallel keeps its own view of the parameters."""
    import torch
    from peft.helpers import disable_input_dtype_casting

    held = []
    active = device.name == "cpu" and device.bf16 and world_size() == 1
    if active:
        for module in model.modules():
            layer = getattr(module, "base_layer", None)
            if isinstance(layer, torch.nn.Linear) and not layer.weight.requires_grad:
                held.append((layer.weight, layer.weight.data))
                layer.weight.data = layer.weight.data.to(torch.bfloat16)
    try:
        with disable_input_dtype_casting(model, active=active):
            yield len(held)
    finally:
        for weight, data in held:
            weight.data = data
