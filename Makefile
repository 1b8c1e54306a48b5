# celery-platform: `make test` bootstraps everything from nothing (venv, Redis, Go builds) and runs every tier.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
STACK ?= dev
PYTHON ?= python3
VENV := venv
BIN := $(VENV)/bin
CHECKOV_VENV := build/checkov-venv

.PHONY: setup venv system-deps test lint typecheck actionlint pytest render preview up bench fuzz lock clean

# components/ is installed in setuptools' strict editable mode (a link tree that mypy can follow), so a
# module added to or removed from it (the folder's mtime) re-links the package.
$(BIN)/.installed: requirements.txt pyproject.toml components components/hooks components/exporter
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	touch $@

# Real Redis for the runtime tier: Debian's package (we are root in CI; a missing server fails the tests).
system-deps:
	command -v redis-server >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null; }
	command -v go >/dev/null || { echo "go is required to build tools/kube-testenv and actionlint" >&2; exit 1; }

venv: $(BIN)/.installed

setup: $(BIN)/.installed $(CHECKOV_VENV)/.installed system-deps

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	@# mypy cannot follow setuptools' package-dir mapping from the sources: a link names components/ as the package.
	mkdir -p .typecheck && ln -sfn ../components .typecheck/celery_platform
	$(BIN)/mypy .typecheck/celery_platform infra/__main__.py provider policy/celery_guardrails.py
	$(BIN)/mypy examples/consumer/__main__.py

actionlint:
	tools/actionlint.sh

pytest: setup
	$(BIN)/pytest -q

test: lint typecheck actionlint pytest

render: $(BIN)/.installed
	$(BIN)/python -m celery_platform.render $(STACK) -o build/$(STACK).yaml
	cat build/$(STACK).yaml

policy/venv/.installed: policy/requirements.txt
	test -x policy/venv/bin/python || $(PYTHON) -m venv policy/venv
	policy/venv/bin/python -m pip install --quiet -r policy/requirements.txt
	touch $@

# The Pulumi CLI on PATH; without one, the toolchain that tools/pulumi-engine builds from source.
PULUMI ?= $(if $(shell command -v pulumi 2>/dev/null),pulumi,tools/pulumi-engine/pulumi.sh)

# preview, up and drift are exactly what .github/workflows runs (and what the engine tier runs): plain
# commands for a runner, with no prompt (--non-interactive; `up` applies with --yes, so preview first).
preview: $(BIN)/.installed policy/venv/.installed
	$(PULUMI) preview --stack $(STACK) --non-interactive --diff --policy-pack policy

up: $(BIN)/.installed policy/venv/.installed
	$(PULUMI) up --stack $(STACK) --non-interactive --yes --diff --policy-pack policy

# Drift: the live cluster against the stack's state, writing neither, so read-only credentials do.
# Exits non-zero with "no changes were expected" (pulumi's exit code 7) when someone changed the cluster.
.PHONY: drift
drift: $(BIN)/.installed
	$(PULUMI) refresh --stack $(STACK) --non-interactive --preview-only --expect-no-changes --diff

# The long fuzz run of the whole program (stack file -> exit code, message, YAML); `make test` runs 40 cases.
FUZZ_CASES ?= 1000
fuzz: $(BIN)/.installed
	$(BIN)/python -m tests.fuzz.program --cases $(FUZZ_CASES)

# Ratios measured side by side in one run (probe cost, cold start, render cost); never part of `make test`.
bench: $(BIN)/.installed system-deps
	$(BIN)/python -m benchmarks.run

lock:
	rm -rf build/lock-venv && $(PYTHON) -m venv build/lock-venv
	build/lock-venv/bin/pip install --quiet -r <(grep -v '^-e' requirements.txt)
	build/lock-venv/bin/pip freeze

clean:
	rm -rf build .mypy_cache .ruff_cache .pytest_cache .hypothesis
