# modeldeploy — everything is installed by this Makefile: a fresh machine needs only `make demo` / `make test`.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export MODELDEPLOY_CACHE ?= $(HOME)/.cache/modeldeploy
CLUSTER_BIN := $(MODELDEPLOY_CACHE)/bin
DEPS_STAMP := $(VENV)/.deps-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
APT_PACKAGES := prometheus lua5.1
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: help venv binaries system-deps deps cluster-up cluster-down cluster-status demo test test-unit \
        test-integration test-cluster test-e2e lint crds crds-check bench clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | column -t -s $$'\t'

venv: $(DEPS_STAMP) ## Python virtualenv with the project and its dependencies
$(DEPS_STAMP): pyproject.toml
	@echo "[setup] Python virtualenv in $(VENV) (first time: a few minutes, TensorFlow is large)"
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q --progress-bar off -e '.[operator,serving,dev]'
	@rm -f $(VENV)/.deps-*; touch $@

binaries: ## build etcd, kube-*, kubectl, kwok, helm and the Go router from the Go module proxy (cached)
	@bash hack/build-binaries.sh
	@bash hack/build-router.sh >/dev/null

system-deps: ## Prometheus and Lua 5.1 from Debian's packages
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "[setup] installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

deps: venv binaries system-deps

cluster-up: venv binaries ## start the local control plane (idempotent) and print how to use it
	@$(PY) -m devcluster up

cluster-down: ## stop the local control plane; leaves no process and no port behind
	@if [ -x $(PY) ]; then $(PY) -m devcluster down; fi

cluster-status:
	@$(PY) -m devcluster status

demo: deps ## the main job: local cluster, CRD, operator, an example ModelDeployment becoming Ready
	@$(PY) hack/demo.py

test: deps ## install everything and run the whole suite (Go router, unit, integration, cluster, e2e)
	@cd serving-image/router-go && go test -count=1 ./...
	@$(PY) -m pytest tests $(PYTEST_ARGS)

test-unit: venv ## fast tests, no cluster
	@$(PY) -m pytest tests/unit -q $(PYTEST_ARGS)

test-integration: venv
	@$(PY) -m pytest tests/integration $(PYTEST_ARGS)

test-cluster: deps
	@$(PY) -m pytest tests/cluster $(PYTEST_ARGS)

test-e2e: deps
	@$(PY) -m pytest tests/e2e $(PYTEST_ARGS)

lint: venv ## ruff + mypy
	@$(VENV)/bin/ruff check operator serving-image hack tests bench
	@$(VENV)/bin/mypy operator/modeldeploy serving-image/mdserve hack/devcluster hack/demo.py
	@$(VENV)/bin/mypy tests bench
	@cd serving-image/router-go && test -z "$$(gofmt -l .)" && go vet ./...

crds: venv ## regenerate crds/ and the chart's copy from the schema source
	@$(PY) -m modeldeploy.api.generate

crds-check: venv
	@$(PY) -m modeldeploy.api.generate --check

clean: cluster-down
	rm -rf $(VENV) .cluster .pytest_cache .mypy_cache .ruff_cache
