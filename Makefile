# Visual defect inspector: `make help` lists the targets.
SHELL := /bin/bash
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-10s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	@# The CPU build of torch first, so the range in pyproject.toml does not pull a CUDA build.
	$(PYTHON) -m pip install --quiet "torch==2.13.0"
	$(PYTHON) -m pip install --quiet -e ".[dev]"
	@touch $@

setup: $(STAMP) ## Create .venv and install everything (idempotent, fast when done)

run: $(STAMP) ## Run the whole pipeline offline (ARGS="--num-images 1000 --epochs 3")
	$(PYTHON) -m pipeline run $(ARGS)

test: $(STAMP) ## Run the test suite (PYTEST_ARGS="-m 'not slow'" for the quick part)
	$(PYTHON) -m pytest $(PYTEST_ARGS)

compile: $(STAMP) ## Compile the pipeline to compiled/visual_defect_sft.yaml
	$(PYTHON) -m pipeline compile

runs: $(STAMP) ## List past offline runs (ARGS="--compare RUN_A RUN_B")
	$(PYTHON) -m pipeline runs $(ARGS)

inspect: $(STAMP) ## Ask the latest tuned inspector about images (ARGS="photo1.png photo2.jpg")
	$(PYTHON) -m pipeline inspect $(ARGS)

serve: $(STAMP) ## Start the local Vertex AI and storage in the foreground
	$(PYTHON) -m localvertex serve $(ARGS)

bench: $(STAMP) ## Run the benchmarks (they print figures)
	$(PYTHON) bench/bench_model.py
	$(PYTHON) bench/bench_pipeline.py

clean: ## Remove local runs and the local Vertex AI data (keeps .venv)
	rm -rf runs .localvertex

.PHONY: help setup run test compile runs inspect serve bench clean
