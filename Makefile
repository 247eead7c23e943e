# Quick start: `make demo` and `make test` on a fresh clone; both run `make setup` first.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.gptdata-installed

.PHONY: setup demo test bench bench-smoke lint clean crosscheck

setup: $(STAMP)

# torch is pinned here (not in pyproject) because 2.13.0 is the CPU wheel on local disk;
# any other spec pulls a multi-GB CUDA build. The package itself asks only for torch>=2.2.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(VENV)/bin/gptdata demo

test: setup
	$(PY) -m pytest

# The benchmark corpora are written by bench/corpus.py from Python's own standard library (kept in
# bench/out/): nothing beside the checkout is needed. BENCH_FLAGS=--smoke (or `make bench-smoke`)
# runs the same chain at toy sizes, to check in a few minutes that every script runs to the end.
BENCH_FLAGS ?=
bench: setup
	$(PY) -m pip install -q -e '.[dev,bench]'
	$(PY) bench/prepare.py $(BENCH_FLAGS)
	$(PY) bench/prepare.py --engine ray $(BENCH_FLAGS)
	$(PY) bench/tokenize.py $(BENCH_FLAGS)
	$(PY) bench/loader.py $(BENCH_FLAGS)
	$(PY) bench/embeddings.py $(BENCH_FLAGS)
	$(PY) bench/export.py $(BENCH_FLAGS)
	$(PY) bench/eval.py $(BENCH_FLAGS)
	$(PY) bench/mixture.py $(BENCH_FLAGS)
	$(PY) bench/remote.py $(BENCH_FLAGS)

bench-smoke:
	$(MAKE) bench BENCH_FLAGS=--smoke

# The reference readers (megatron-core, lm-eval, datasets) in a venv of their own; torch is pinned
# in the same pip command, or they would pull a CUDA build.
XVENV := .venv-crosscheck
# litdata and litgpt in a second venv: litdata pulls PyPI's torchvision (a CUDA build that fails
# to load beside torch 2.13.0+cpu and then breaks transformers' Trainer), removed after install.
LVENV := .venv-crosscheck-lit
crosscheck:
	test -x $(XVENV)/bin/python || $(PYTHON) -m venv $(XVENV)
	$(XVENV)/bin/python -m pip install -q torch==2.13.0 -r crosscheck/requirements.txt -e '.[dev]'
	$(XVENV)/bin/python -m pytest crosscheck -q
	test -x $(LVENV)/bin/python || $(PYTHON) -m venv $(LVENV)
	$(LVENV)/bin/python -m pip install -q torch==2.13.0 -r crosscheck/requirements-lit.txt -e .
	$(LVENV)/bin/python -m pip uninstall -q -y torchvision
	$(LVENV)/bin/python -m pytest crosscheck/test_recipes.py -q -k "litdata or litgpt"

lint: setup
	$(VENV)/bin/ruff check src tests bench examples
	$(VENV)/bin/ruff format --check src tests bench examples

clean:
	rm -rf $(VENV) $(XVENV) $(LVENV) build dist src/*.egg-info .pytest_cache
