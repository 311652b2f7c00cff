# Visual defect inspector: `make help` lists the targets.
SHELL := /bin/bash
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
ARGS ?=
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

help: ## Show this help
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --upgrade pip
	@# torch first, pinned: on these machines pip's find-links holds the 2.13.0 CPU wheel, so the
	@# range in pyproject.toml is then satisfied and no multi-GB CUDA build is pulled.
	$(PYTHON) -m pip install --quiet "torch==2.13.0"
	$(PYTHON) -m pip install --quiet -e ".[dev]"
	@# Chromium for the console's browser tests, from Debian's packages where this user may install
	@# them (CI runs as root); elsewhere those tests skip, saying which command enables them.
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
		&& { apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 \
		&& apt-get install -y -q chromium >/dev/null 2>&1; }; } ; } \
		|| echo "note: no Chromium (apt-get install -y chromium, as root): the console's browser tests will skip"
	@touch $@

setup: $(STAMP) ## Create .venv and install everything (idempotent, fast when done)

run: $(STAMP) ## Run the whole pipeline offline (ARGS="--num-images 1000 --epochs 3")
	$(PYTHON) -m pipeline run $(ARGS)

test: $(STAMP) ## Run the test suite (PYTEST_ARGS="-m 'not slow'" for the quick part)
	$(PYTHON) -m pytest $(PYTEST_ARGS)

lint: $(STAMP) ## Lint and check formatting with ruff (FIX=1 applies the fixes)
	$(VENV)/bin/ruff check $(if $(FIX),--fix) .
	$(VENV)/bin/ruff format $(if $(FIX),,--check) .

validate: $(STAMP) ## Check a tuning JSONL before you pay (ARGS="train.jsonl" or ARGS="gs://bucket/train.jsonl --json")
	$(PYTHON) -m pipeline validate $(ARGS)

compile: $(STAMP) ## Compile the pipeline to compiled/visual_defect_sft.yaml
	$(PYTHON) -m pipeline compile

runs: $(STAMP) ## List past offline runs (ARGS="--compare RUN_A RUN_B")
	$(PYTHON) -m pipeline runs $(ARGS)

inspect: $(STAMP) ## Ask the champion inspector about images (ARGS="photo1.png photo2.jpg", "--latest ...")
	$(PYTHON) -m pipeline inspect $(ARGS)

champion: $(STAMP) ## Show the inspector's champion and its promotion history (ARGS="--name NAME", "--json")
	$(PYTHON) -m pipeline champion $(ARGS)

serve: $(STAMP) ## Start the local Vertex AI and storage in the foreground
	$(PYTHON) -m localvertex serve $(ARGS)

console: $(STAMP) ## Start the local Vertex AI (or use the running one) and print the console's login URL
	$(PYTHON) -m localvertex.console $(ARGS)

bench: $(STAMP) ## Run the benchmarks (they print figures)
	$(PYTHON) bench/bench_model.py
	$(PYTHON) bench/bench_robustness.py
	$(PYTHON) bench/bench_pipeline.py
	$(PYTHON) bench/bench_serving.py
	$(PYTHON) bench/bench_scale.py
	$(PYTHON) bench/bench_scale.py --eval 2000
	$(PYTHON) bench/bench_cli_startup.py
	$(PYTHON) bench/bench_twin_pipelines.py
	$(PYTHON) bench/bench_twin_run.py
	$(PYTHON) bench/bench_console.py

# ---- Vertex AI (settings in env.sh: cp env.sh.example env.sh) --------------------------
# Without env.sh the settings come from the environment: `. <(python -m localvertex env)` exports
# them for the local Vertex AI (make serve). An env.sh, when present, is read on top of them.
# Extra pipeline parameters: make submit PARAMS="num_images=400 epoch_count=3"; NO_CACHE=1 reruns every step.
# PARAMS splits on spaces: for a value with spaces use ARGS='--param "system_instruction=You are a QC inspector."'.
PARAMS ?=
VERTEX_ENV = set -a && { test ! -f env.sh || . ./env.sh; } && set +a
VERTEX_RUN_OPTS = --project "$$PROJECT" --location "$$LOCATION" --bucket "$$BUCKET" \
	$${EXPERIMENT:+--experiment "$$EXPERIMENT"} $${SERVICE_ACCOUNT:+--service-account "$$SERVICE_ACCOUNT"} \
	$(if $(NO_CACHE),--no-cache) $(foreach p,$(PARAMS),--param $(p))

vertex-env:
	@test -f env.sh || test -n "$$PROJECT" || { echo "env.sh not found and no PROJECT in the environment: cp env.sh.example env.sh, then set PROJECT, LOCATION, BUCKET (and EXPERIMENT, REPO, CRON); or, for the local Vertex AI, . <(python -m localvertex env)" >&2; exit 1; }

submit: $(STAMP) vertex-env ## Submit one run to Vertex AI Pipelines (PARAMS="num_images=400", NO_CACHE=1)
	@$(VERTEX_ENV) && $(PYTHON) -m pipeline submit $(VERTEX_RUN_OPTS) $(ARGS)

schedule: $(STAMP) vertex-env ## Create the nightly schedule from CRON in env.sh (ARGS="--list", "--pause NAME")
	@$(VERTEX_ENV) && if [[ "$(ARGS)" == *--list* || "$(ARGS)" == *--pause* || "$(ARGS)" == *--resume* || "$(ARGS)" == *--delete* ]]; then \
		$(PYTHON) -m pipeline schedule --project "$$PROJECT" --location "$$LOCATION" $(ARGS); \
	else \
		test -n "$$CRON" || { echo "set CRON in env.sh, e.g. export CRON=\"0 2 * * *\"" >&2; exit 1; }; \
		$(PYTHON) -m pipeline schedule --cron "$$CRON" $(VERTEX_RUN_OPTS) $(ARGS); \
	fi

upload: $(STAMP) vertex-env ## Upload the compiled pipeline to Artifact Registry (REPO in env.sh) as a console template
	@$(VERTEX_ENV) && test -n "$$REPO" || { echo "set REPO in env.sh (https://LOCATION-kfp.pkg.dev/PROJECT/REPO)" >&2; exit 1; }
	@$(VERTEX_ENV) && $(PYTHON) -m pipeline upload --repo "$$REPO" $(ARGS)

compare: $(STAMP) vertex-env ## Compare the Vertex Experiments runs of EXPERIMENT, best first (ARGS="--csv runs.csv")
	@$(VERTEX_ENV) && $(PYTHON) -m pipeline compare --experiment "$$EXPERIMENT" --project "$$PROJECT" --location "$$LOCATION" $(ARGS)

vertex-smoke: $(STAMP) vertex-env ## Smallest real (billed) run on Vertex AI, then a checklist of what only Vertex shows (ARGS=--yes)
	@$(VERTEX_ENV) && $(PYTHON) -m pipeline vertex-smoke --project "$$PROJECT" --location "$$LOCATION" --bucket "$$BUCKET" \
		$${EXPERIMENT:+--experiment "$$EXPERIMENT"} $${SERVICE_ACCOUNT:+--service-account "$$SERVICE_ACCOUNT"} \
		$(foreach p,$(PARAMS),--param $(p)) $(ARGS)

clean: ## Remove local runs and the local Vertex AI data (keeps .venv)
	rm -rf runs .localvertex

.PHONY: help setup run test lint validate compile runs inspect champion serve console bench vertex-env submit schedule upload compare vertex-smoke clean
