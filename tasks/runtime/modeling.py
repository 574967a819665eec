"""Loading checkpoints safely and choosing the device: shared by every stage that runs a model."""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from tasks.core.schema import KprefError


@dataclass(frozen=True)
class Device:
    name: str  # "cuda" or "cpu"
    dtype: torch.dtype

    @property
    def bf16(self) -> bool:
        return self.dtype == torch.bfloat16


def cpu_has_fast_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 matrix work runs about twice as fast as fp32 on such CPUs."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return bool(re.search(r"\b(avx512_bf16|amx_bf16)\b", flags))


def pick_device(requested: str = "auto", precision: str = "auto") -> Device:
    """CUDA when present, else CPU; bf16 where the hardware does it fast ('auto'), else as asked.

    On CUDA without bf16 'auto' falls back to fp16; on a CPU without bf16 instructions, to fp32.
    """
    if requested == "cuda" and not torch.cuda.is_available():
        raise KprefError("train.device: 'cuda' requested but no CUDA device is available")
    explicit = {"fp32": torch.float32, "bf16": torch.bfloat16}.get(precision)
    if requested in ("auto", "cuda") and torch.cuda.is_available():
        auto = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return Device("cuda", explicit or auto)
    return Device("cpu", explicit or (torch.bfloat16 if cpu_has_fast_bf16() else torch.float32))


def check_checkpoint_dir(path: str | Path) -> Path:
    path = Path(path)
    if not (path / "config.json").exists():
        raise KprefError(f"{path}: not a Hugging Face checkpoint (no config.json)")
    if not any(path.glob("*.safetensors")):
        raise KprefError(f"{path}: no *.safetensors weights (kpref loads weights only as safetensors)")
    return path


def load_tokenizer(path: str | Path, trust_remote_code: bool = False, padding_side: str | None = None):
    """A checkpoint's tokenizer; one without a pad token pads with its end-of-sequence token."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if padding_side:
        tok.padding_side = padding_side
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(path: str | Path, device: Device | None = None, trust_remote_code: bool = False,
               precision: str = "auto"):
    """Load a local safetensors checkpoint and its tokenizer (left padding for batched generation)."""
    from transformers import AutoModelForCausalLM

    path = check_checkpoint_dir(path)
    device = device or pick_device(precision=precision)
    tok = load_tokenizer(path, trust_remote_code, padding_side="left")
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=device.dtype, use_safetensors=True, trust_remote_code=trust_remote_code
    ).to(device.name)
    model.eval()
    return model, tok


def cache_keyword(model) -> str:
    """The name under which `model`'s forward takes and returns its key/value cache: `cache` in
    newer transformers, `past_key_values` before."""
    import inspect

    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def release_memory() -> None:
    """Between training phases: free what the last trainer left and hand it back to the system.
    glibc keeps freed heap for reuse, yet DPO's differently shaped tensors do not fit it, so
    without this the peaks of training phases add up (SFT then DPO: 7.6 GiB on the default, benchmarks/README.md)."""
    import ctypes
    import gc

    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl): its allocator decides
        pass


def model_digest(model_dir: str | Path) -> str:
    """A checkpoint's identity: its weights and config, hashed in blocks (never whole in memory)."""
    h = hashlib.sha256()
    for f in sorted(Path(model_dir).glob("*.safetensors")) + [Path(model_dir) / "config.json"]:
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 24), b""):
                h.update(block)
    return h.hexdigest()[:20]
