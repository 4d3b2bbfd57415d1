# The front door. `make demo` and `make test` are the README's two commands.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STATE ?= .local
CLUSTER := $(PY) -m tests.harness.cluster --state-dir $(STATE)
# `make cluster-up` also starts a real node (containerd, kubelet, kube-proxy, kube-scheduler) where the
# machine can run one (NODE=auto); NODE=1 insists (fails with the reason), NODE=0 keeps every pod simulated.
NODE ?= auto
# `make demo` plays on real pods where the machine can run the real node (PODS=auto; under CI=true it fails
# instead of simulating), PODS=real insists (fails with the reason), PODS=simulated uses podsim and trafficsim.
PODS ?= auto

.PHONY: help install test unit integration manifests demo kind-demo kind-down cluster-up cluster-down cluster-status lint clean

help: ## Show the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	# The real Helm v4 library for the chart tests; it declares Python >= 3.12 but works on 3.11.
	$(PY) -m pip install -q --ignore-requires-python 'helm-sdkpy>=0.1.32,<0.2'
	touch $@

install: $(VENV)/.installed ## Create .venv with Ballast and its test tools

test: $(VENV)/.installed ## Unit + integration tests (starts the local control plane; builds it on first use)
	$(PY) -m pytest

unit: $(VENV)/.installed ## Unit tests only (seconds, no cluster)
	$(PY) -m pytest tests/unit

integration: $(VENV)/.installed ## Integration tests only
	$(PY) -m pytest tests/integration

manifests: $(VENV)/.installed ## Regenerate crds/ (and the chart's copy) from the pydantic models
	$(PY) -m ballast.api.crds crds
	cp crds/*.yaml charts/ballast/crds/

lint: $(VENV)/.installed ## ruff (with complexity <= 12), mypy (strict on api/, policy/, release/), import layers
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

cluster-up: $(VENV)/.installed ## Start etcd, kube-apiserver, kube-controller-manager, Prometheus, simulators, and a real node where possible (NODE=auto|1|0)
	$(CLUSTER) up --node $(NODE)

cluster-down: ## Stop exactly the processes cluster-up started (and clean up the real node's host state)
	@if [ -x $(PY) ]; then $(CLUSTER) down; else echo "no local cluster (no $(VENV))"; fi

cluster-status: $(VENV)/.installed ## Show which local control-plane processes are alive
	$(CLUSTER) status

demo: $(VENV)/.installed ## The demo on the local control plane, on real pods where possible (PODS=auto|real|simulated)
	$(PY) -m tests.harness.demo --state-dir $(STATE) --pods $(PODS)

kind-demo: ## The demo on real pods in a kind cluster (needs Docker, kind, kubectl, helm; see deploy/kind/)
	STATE=$(STATE) bash hack/kind-demo.sh

kind-down: ## Delete the kind-demo cluster
	STATE=$(STATE) bash hack/kind-demo.sh down

clean: cluster-down ## Stop the cluster and remove local state (keeps the cached control-plane build)
	rm -rf $(STATE)
