# DiffRenderGAN — developer entry points. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock | sha1sum | cut -c1-12)
MATERIAL ?= tio2
export NO_ALBUMENTATIONS_UPDATE := 1
export HYDRA_FULL_ERROR := 0
export PYTHONHASHSEED := 0

.PHONY: help install run test test-fast test-gpu smoke lint format bench bench-full sweep docker-build clean lock

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' Makefile | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements.lock
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements.lock -e ".[dev]"
	@rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP) ## create .venv and install the pinned stack + this package (idempotent)

run: install ## main job: train on the embedded demo set, export, evaluate
	$(PY) -m experiments.run +material=$(MATERIAL)

test: install ## full test suite (what CI runs)
	$(PY) -m pytest -q -p no:cacheprovider --durations=15

test-fast: install ## unit tests only (skips tests marked slow/ddp)
	$(PY) -m pytest -q -m "not slow and not ddp"

smoke: install ## <= 3 minute end-to-end run on the demo data
	$(PY) -m experiments.run +material=$(MATERIAL) experiment=smoke

lint: install ## ruff lint + format check, Dockerfile lint
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/hadolint docker/Dockerfile

format: install ## apply ruff fixes and formatting
	$(PY) -m ruff check --fix .
	$(PY) -m ruff format .

bench: install ## quick benchmark, prints JSON
	$(PY) -m benchmarks.run

bench-full: install ## benchmark with scaling curves
	$(PY) -m benchmarks.run --full

sweep: install ## validate configs/sweep/$(MATERIAL).yaml and create the W&B sweep (prints `wandb agent ...`)
	$(PY) -m experiments.sweep configs/sweep/$(MATERIAL).yaml --create

lock: ## regenerate requirements.lock from the current venv
	$(PY) -m pip freeze --exclude-editable | grep -v '^-e ' > requirements.lock

docker-build: ## build the GPU image (needs a Docker engine)
	docker build -f docker/Dockerfile -t diffrendergan:latest .

clean: ## remove caches and run outputs (keeps .venv)
	rm -rf outputs multirun wandb .pytest_cache .ruff_cache .cache build *.egg-info
	find . -name __pycache__ -prune -exec rm -rf {} +

test-gpu: install ## CUDA checks only (needs a GPU): renderer parity, GPU/DDP-on-GPU runs, export
	$(PY) -m pytest -q -m gpu
