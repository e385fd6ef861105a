# The two commands a new user needs: `make demo` and `make test`. Both set themselves up.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
export PATH := $(CURDIR)/$(BIN):$(PATH)
export PULUMI_SKIP_UPDATE_CHECK := true

.PHONY: setup toolchain control-plane k8s-plugin test-k8s test test-unit test-e2e demo demo-clean envs-down bench lint help

help:
	@echo "make demo        provision dev/staging/prod, train, promote, serve (does its own setup)"
	@echo "make test        the whole test suite (does its own setup)"
	@echo "make test-unit   fast tests only (no servers)"
	@echo "make demo-clean  stop every environment and delete local state (.conveyor/)"
	@echo "make bench       benchmarks (prints tables)"
	@echo "make lint        ruff over the whole tree"
	@echo "make envs-down   stop dev, staging and prod (keeps .conveyor/)"
	@echo "make test-k8s    kubernetes platform: builds the Pulumi Kubernetes plugin (once), real pulumi up on a test control plane"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Re-install only when the dependency list changes.
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $@

toolchain: $(VENV)/.installed
	@bash scripts/pulumi-toolchain.sh
	@# Pulumi writes a passphrase salt into Pulumi.<stack>.yaml; it is local, keep it out of git.
	@if git rev-parse --git-dir >/dev/null 2>&1; then \
	  git config filter.pulumi-salt.clean "sed '/^encryptionsalt:/d'"; \
	  git config filter.pulumi-salt.smudge cat; fi

setup: $(VENV)/.installed toolchain
	@bash scripts/postgres.sh

# etcd + kube-apiserver + kube-controller-manager for the kubernetes platform's tests (cached build)
control-plane:
	@bash scripts/k8s-control-plane.sh >/dev/null

test: setup control-plane
	$(BIN)/pytest

test-unit: setup
	$(BIN)/pytest -m "not e2e"

test-e2e: setup control-plane
	$(BIN)/pytest -m e2e

# opt-in: the Pulumi Kubernetes plugin (~15 min build, cached), then a real `pulumi up` of the
# kubernetes platform against the test control plane
k8s-plugin: setup
	@bash scripts/pulumi-kubernetes-plugin.sh >/dev/null

test-k8s: setup control-plane k8s-plugin
	$(BIN)/pytest tests/e2e/test_kubernetes_up.py tests/infra_k8s tests/bundles/test_kubernetes_target.py

demo: setup
	$(BIN)/python -m conveyor.demo

demo-clean: setup
	$(BIN)/python -m conveyor.demo --clean

bench: setup
	$(BIN)/python -m bench

# the linter CI runs (rules in pyproject.toml [tool.ruff])
lint: $(VENV)/.installed
	$(BIN)/ruff check .

# stop every environment's processes and Pulumi resources, keeping the state dir
envs-down: setup
	@for env in dev staging prod; do $(BIN)/conveyor env down $$env || exit 1; done
