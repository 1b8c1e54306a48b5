# celery-platform: `make test` bootstraps everything from nothing (venv, Redis, Go builds) and runs every tier.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
STACK ?= dev
PYTHON ?= python3
VENV := venv
BIN := $(VENV)/bin
CHECKOV_VENV := build/checkov-venv

.PHONY: pytest-engine-guides docs dev-cluster dev-cluster-stop setup venv relink system-deps test test-fast lint typecheck actionlint pytest pytest-parallel render preview up bench fuzz lock clean migrate-config config-native pulumi-yaml reference

# Two dependency sets. The runtime set (requirements.txt) is all that deploying and rendering need; the dev
# set (requirements-dev.txt) adds the test toolchain. components/celery_platform is installed in setuptools' strict editable
# mode (a link tree): after adding or removing a module, run `make relink`. (The link tree no longer follows the
# folders' mtimes: a test run creates __pycache__ and egg-info folders there, and re-linking mid-run broke the
# imports of the tests running beside it.) Installers print to stderr, so `make render > x.yaml` writes only YAML.
# --no-compile: the runtime set would be half bytecode; Python compiles what a render imports, on first use.
# --no-deps: requirements.txt is the whole runtime set, less requirements that nothing here imports
# (tools/runtime_set.py says which and why); resolving would add them back.
# The venv starts with pip alone, put there by $(PYTHON)'s own pip (--python, pip 22.3+): Python 3.11's
# ensurepip adds setuptools too (13 MB with its bytecode), which nothing here runs (builds are isolated).
# Without such a pip, ensurepip as usual.
$(BIN)/.runtime: requirements.txt pyproject.toml
	@test -x $(BIN)/python || { \
		echo "make: creating ./$(VENV)" >&2; \
		$(PYTHON) -m venv --without-pip $(VENV); \
		$(PYTHON) -m pip --python $(BIN)/python install --quiet --disable-pip-version-check --no-compile pip \
			>/dev/null 2>&1 || { echo "make: no pip 22.3+ in $(PYTHON); ensurepip instead" >&2; $(PYTHON) -m venv --clear $(VENV); }; \
	}
	@echo "make: installing the runtime set (requirements.txt) into ./$(VENV)" >&2
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile --upgrade pip >&2
	@$(BIN)/python -m pip install --disable-pip-version-check --no-compile --no-deps -r requirements.txt >&2
	@touch $@

# The tests start many interpreters (celery workers, renders): precompile everything once, here.
$(BIN)/.dev: $(BIN)/.runtime requirements-dev.txt
	@echo "make: installing the dev set (requirements-dev.txt) into ./$(VENV)" >&2
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt >&2
	@$(BIN)/python -m compileall -q -j 0 $(VENV)/lib >/dev/null
	@touch $@

# The docs site's builder (requirements-docs.txt: mkdocs, pinned), on top of the dev set.
$(BIN)/.docs: $(BIN)/.dev requirements-docs.txt
	@echo "make: installing the docs set (requirements-docs.txt) into ./$(VENV)" >&2
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-docs.txt >&2
	@touch $@

$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CHECKOV_VENV)/bin/python -m pip install --quiet -r requirements-checkov.txt
	touch $@

# Real Redis and Redis Sentinel for the runtime tier: Debian's packages (we are root in CI; a missing server fails the tests).
system-deps:
	{ command -v redis-server && command -v redis-sentinel; } >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server redis-sentinel redis-tools >/dev/null; }
	command -v go >/dev/null || { echo "go is required to build tools/kube-testenv, tools/keda, tools/promtool and actionlint" >&2; exit 1; }

# For deployers: ./venv with the runtime set, which `pulumi preview` and `pulumi up` use.
venv: $(BIN)/.runtime

# After adding or removing a module of components/celery_platform: re-link the editable install.
relink:
	rm -f $(BIN)/.runtime
	$(MAKE) $(BIN)/.runtime

# For developers: the dev set, checkov's venv, Redis and Go.
setup: $(BIN)/.dev $(BIN)/.docs $(CHECKOV_VENV)/.installed system-deps

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy components/celery_platform infra/__main__.py provider policy/celery_guardrails.py policy/autoscaler_guardrails.py
	$(BIN)/mypy examples/consumer/__main__.py

actionlint:
	tools/actionlint.sh

# Tiers built around one session-wide server (the cluster tier's control plane, the engine tier's Pulumi
# CLI) run as their own serial pytest process each, so that the server starts once; every other tier
# runs in one process over xdist workers, which steal work from each other (the long runtime scenarios
# come one after another in collection order). Most runtime tests wait on timers and processes, not on the
# CPU, so there are more workers than cores. (xdist's --dist loadgroup did not keep a marked group on one
# worker here: pytest 9.2, xdist 3.8 ran one group's tests on three workers.)
SERIAL_TIERS := $(wildcard tests/cluster tests/engine)
PYTEST_WORKERS ?= 6
pytest: pytest-parallel $(addprefix pytest-serial-,$(notdir $(SERIAL_TIERS))) pytest-engine-guides

# The engine tier is the longest; its docs-driven tests (the operations guide, the TLS broker switch, the
# preflight refusals, make dev-cluster) run as a second process with a cluster of its own, beside the rest.
# Most of their time is the engine and the API server waiting on each other, not the CPU. Both processes
# share one toolchain build (tools/pulumi-engine/build.sh holds a lock).
ENGINE_GUIDES := $(wildcard tests/engine/test_operations_guide.py tests/engine/test_tls_broker_switch.py tests/engine/test_sentinel_switch.py tests/engine/test_preflight.py tests/engine/test_dev_cluster.py)

pytest-parallel: setup
	$(BIN)/pytest -q -n $(PYTEST_WORKERS) --dist worksteal $(addprefix --ignore=,$(SERIAL_TIERS))

pytest-serial-%: setup
	$(BIN)/pytest -q tests/$* $(if $(filter engine,$*),$(addprefix --ignore=,$(ENGINE_GUIDES)))

pytest-engine-guides: setup
	$(BIN)/pytest -q $(ENGINE_GUIDES)

# The full gate (CI runs it): setup first, then lint, types, actionlint, the docs site and the pytest processes side by side.
test: setup
	$(MAKE) -j6 --output-sync=target lint typecheck actionlint docs pytest

# The inner loop: unit and render tiers only, in parallel (no Redis, Go or cluster needed).
test-fast: $(BIN)/.dev $(CHECKOV_VENV)/.installed
	$(BIN)/pytest -q -n auto tests/unit tests/manifests

# The docs site (mkdocs.yml: docs/ to build/site), strict: a warning fails the build, and mkdocs.yml's
# validation settings make every broken internal link or anchor and every link to a file outside docs/
# a warning. External links are not checked (the build is offline).
docs: $(BIN)/.docs
	$(BIN)/mkdocs build --strict --quiet

# A local cluster to try the platform on, no cloud (docs/try-locally.md): this repository's kube-apiserver
# with kube-scheduler, kwok nodes, a StorageClass and the KEDA and Prometheus Operator CRDs. Stays up
# until Ctrl-C or `make dev-cluster-stop`.
DEV_CLUSTER_DIR ?= build/dev-cluster
dev-cluster: $(BIN)/.dev
	$(BIN)/python -m tools.dev_cluster --dir $(DEV_CLUSTER_DIR)

dev-cluster-stop:
	@if test -s $(DEV_CLUSTER_DIR)/pid; then kill -TERM "$$(cat $(DEV_CLUSTER_DIR)/pid)" && echo "make: stopping the dev cluster (pid $$(cat $(DEV_CLUSTER_DIR)/pid))"; else echo "make: no dev cluster is running from $(DEV_CLUSTER_DIR)"; fi

# Silent recipe (@): stdout is the YAML alone, so `make render > x.yaml` is a valid file.
render: $(BIN)/.runtime
	@$(BIN)/python -m celery_platform.render $(STACK) -o build/$(STACK).yaml
	@cat build/$(STACK).yaml

# docs/configuration.md, generated from CeleryPlatformArgs (the schema the component package serves);
# tests/unit/test_reference.py fails when the committed file is stale.
reference: $(BIN)/.runtime
	@$(BIN)/python -m celery_platform.package.reference -o docs/configuration.md

policy/venv/.installed: policy/requirements.txt
	test -x policy/venv/bin/python || $(PYTHON) -m venv policy/venv
	policy/venv/bin/python -m pip install --quiet -r policy/requirements.txt
	touch $@

# The Pulumi CLI on PATH; without one, the toolchain that tools/pulumi-engine builds from source.
PULUMI ?= $(if $(shell command -v pulumi 2>/dev/null),pulumi,tools/pulumi-engine/pulumi.sh)

# Pulumi.yaml's config block, generated from CeleryPlatformArgs (tests/unit/test_config.py fails when stale).
pulumi-yaml: $(BIN)/.runtime
	@$(BIN)/python -m celery_platform.config.project_file

# Structured keys (pools, redis, ...) are YAML objects in the stack file. A file from before native config
# holds them as YAML in strings, which the engine refuses as "must be of type 'object'": migrate-config
# rewrites Pulumi.$(STACK).yaml in place (comments and secure: values kept; a second run changes nothing).
migrate-config: $(BIN)/.runtime
	@$(BIN)/python -m celery_platform.config.migrate $(STACK)

# The guard that preview and up run first: it reads the two YAML files only (no dev set, no network,
# no engine), and refuses an unconverted stack file with the command that converts it.
config-native: $(BIN)/.runtime
	@$(BIN)/python -m celery_platform.config.migrate --check $(STACK)

# preview, up and drift are exactly what .github/workflows runs (and what the engine tier runs): plain
# commands for a runner, with no prompt (--non-interactive; `up` applies with --yes, so preview first).
preview: $(BIN)/.runtime policy/venv/.installed config-native
	$(PULUMI) preview --stack $(STACK) --non-interactive --diff --policy-pack policy

up: $(BIN)/.runtime policy/venv/.installed config-native
	$(PULUMI) up --stack $(STACK) --non-interactive --yes --diff --policy-pack policy

# Drift: the live cluster against the stack's state, writing neither, so read-only credentials do.
# Exits non-zero with "no changes were expected" (pulumi's exit code 7) when someone changed the cluster.
.PHONY: drift
drift: $(BIN)/.runtime config-native
	$(PULUMI) refresh --stack $(STACK) --non-interactive --preview-only --expect-no-changes --diff

# The long fuzz run of the whole program (stack file -> exit code, message, YAML); `make test` runs 40 cases.
FUZZ_CASES ?= 1000
fuzz: $(BIN)/.dev
	$(BIN)/python -m tests.fuzz.program --cases $(FUZZ_CASES)

# Ratios measured side by side in one run (probe cost, cold start, render cost); never part of `make test`.
bench: $(BIN)/.dev system-deps
	$(BIN)/python -m benchmarks.run

# Regenerates requirements.txt and requirements-dev.txt from pyproject.toml (UPGRADE=1 to move the pins).
lock:
	PYTHON=$(PYTHON) tools/lock.sh

clean:
	rm -rf build .mypy_cache .ruff_cache .pytest_cache .hypothesis
