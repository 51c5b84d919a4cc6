# Floodgate: the project's verbs. Every target installs what it needs itself.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
UV := .tools/uv/bin/uv
PY := .venv/bin/python
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := .venv

.PHONY: help venv run test test-unit lint fmt generate bench bench-quick tools services clean \
	cluster cluster-install cluster-down

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(UV):
	python3 -m venv .tools/uv && .tools/uv/bin/pip install -q "uv==$(UV_VERSION)"

.venv/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python python3 && touch $@

venv: .venv/.synced  ## create .venv from uv.lock

run: venv  ## serve the API on http://127.0.0.1:8000 (SQLite, in-memory cache and limits)
	.venv/bin/floodgate migrate
	.venv/bin/floodgate serve --host 127.0.0.1 --port 8000

services:  ## install PostgreSQL, Redis, Prometheus and the cluster's packages from Debian if missing
	scripts/ensure-services.sh
	scripts/ensure-prometheus.sh
	scripts/ensure-cluster-packages.sh

tools: venv  ## build the Kubernetes binaries, etcd, helm, containerd, coredns, jaeger, skaffold into .tools/ (cached per user)
	scripts/tools.sh
	scripts/tools-cluster.sh
	scripts/tools-jaeger.sh
	scripts/tools-skaffold.sh

test: venv services tools  ## everything: unit, integration (PostgreSQL, Redis), k8s (control plane)
	.venv/bin/pytest

test-unit: venv  ## only the tests that need no services
	.venv/bin/pytest tests/unit

lint: venv  ## ruff + mypy --strict + hadolint
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy
	.venv/bin/lint-imports --no-cache
	.venv/bin/hadolint service/Dockerfile
	@if [ -x .tools/bin/helm ]; then .tools/bin/helm lint --strict helm/floodgate; fi
	$(PY) scripts/generate.py --check

fmt: venv  ## apply ruff's fixes and formatting
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

generate: venv  ## write the dashboards, the CRD, their chart copies and the chart README table
	$(PY) scripts/generate.py

bench: venv  ## benchmark suite: anchors vs Floodgate → bench/results/latest.{json,md,png} + BENCHMARKS.md
	bench/setup.sh
	$(PY) -m bench.run --publish

bench-quick: venv  ## benchmark smoke run (< 2 min, noisy figures, no thresholds): bench/results/quick.*
	bench/setup.sh
	$(PY) -m bench.run --quick

cluster: venv services tools  ## a real one-node Kubernetes cluster on this machine (root); last line: export KUBECONFIG=… DOCKER_HOST=… (eval it)
	.venv/bin/python -m scripts.cluster up

cluster-install: cluster  ## build and push the images, helm install the chart + k8s/dev/ into namespace floodgate; last line: the API's URL
	.venv/bin/python -m scripts.cluster install

cluster-down: venv  ## remove everything the cluster made (processes, bridge, iptables chains, cgroups, mounts)
	.venv/bin/python -m scripts.cluster down

clean:  ## remove the virtualenv and local data (keeps the per-user tool cache)
	rm -rf .venv .tools/uv floodgate.db
