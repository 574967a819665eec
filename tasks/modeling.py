"""Loading checkpoints safely and choosing the device: shared by every stage that runs a model."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from tasks.errors import KprefError


@dataclass(frozen=True)
class Device:
    name: str  # "cuda" or "cpu"
    dtype: torch.dtype

    @property
    def bf16(self) -> bool:
        return self.dtype == torch.bfloat16


def pick_device(requested: str = "auto") -> Device:
    """CUDA with bf16 when present, else CPU fp32."""
    if requested == "cuda" and not torch.cuda.is_available():
        raise KprefError("train.device: 'cuda' requested but no CUDA device is available")
    if requested in ("auto", "cuda") and torch.cuda.is_available():
        return Device("cuda", torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    return Device("cpu", torch.float32)


def check_checkpoint_dir(path: str | Path) -> Path:
    path = Path(path)
    if not (path / "config.json").exists():
        raise KprefError(f"{path}: not a Hugging Face checkpoint (no config.json)")
    if not any(path.glob("*.safetensors")):
        raise KprefError(f"{path}: no *.safetensors weights (kpref loads weights only as safetensors)")
    return path


def load_model(path: str | Path, device: Device | None = None, trust_remote_code: bool = False):
    """Load a local safetensors checkpoint and its tokenizer (left padding for batched generation)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = check_checkpoint_dir(path)
    device = device or pick_device()
    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=device.dtype, use_safetensors=True, trust_remote_code=trust_remote_code
    ).to(device.name)
    model.eval()
    return model, tok
