# twinledger — the two commands a new user needs are `make demo` and `make test`.
# Every target installs what it needs first and is safe to run twice.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: install install-flower install-slither slither forge-test flower-example fl-bench demo test test-reliability test-fast lint contracts check-artifacts bench bench-node gas gas-trace lock clean chain-up chain-down

install: $(PY_STAMP) $(NPM_STAMP)

$(PY_STAMP): requirements.lock pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.lock
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

# Flower (extra `flower`) pins older fastapi/typer/rich than requirements.lock, so it lives in its own virtualenv
# resolved from requirements-flower.lock (dev + flower extras).
FLOWER_VENV := .venv-flower
FLOWER_PY := $(FLOWER_VENV)/bin/python
FLOWER_STAMP := $(FLOWER_VENV)/.installed

install-flower: $(FLOWER_STAMP) $(NPM_STAMP)

$(FLOWER_STAMP): requirements-flower.lock pyproject.toml
	@test -x $(FLOWER_PY) || $(PYTHON) -m venv $(FLOWER_VENV)
	$(FLOWER_PY) -m pip install -q --disable-pip-version-check -r requirements-flower.lock
	$(FLOWER_PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $@

# Slither (extra `slither`) needs web3<8, the main lock has 8: its own virtualenv, from requirements-slither.lock.
# Only the analyser is used from it (scripts/slither.py runs it on contracts/src), so the project is not installed.
SLITHER_VENV := .venv-slither
SLITHER_STAMP := $(SLITHER_VENV)/.installed

install-slither: $(SLITHER_STAMP)

$(SLITHER_STAMP): requirements-slither.lock
	@test -x $(SLITHER_VENV)/bin/python || $(PYTHON) -m venv $(SLITHER_VENV)
	$(SLITHER_VENV)/bin/python -m pip install -q --disable-pip-version-check -r requirements-slither.lock
	@touch $@

## flower-example: Flower server + 10 clients, every round checkpointed on chain and verified with `fl verify`
flower-example: install-flower
	$(FLOWER_PY) examples/flower_numpy/run.py

## fl-bench: provenance overhead of a federated round (10 MB model, 10 clients) and gas per round
fl-bench: install
	$(PY) scripts/bench/fl.py

$(NPM_STAMP): package-lock.json package.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

## contracts: compile contracts/src into contracts/artifacts (commit the result)
contracts: install
	$(PY) scripts/compile.py

## check-artifacts: fail when the committed artifacts differ from a fresh compile
check-artifacts: install
	$(PY) scripts/compile.py --check

lint: install
	$(VENV)/bin/ruff check sdk node tests scripts examples
	$(VENV)/bin/ruff format --check sdk node tests scripts examples
	$(VENV)/bin/mypy

## slither: static analysis of contracts/src; fails on a medium/high finding not in contracts/slither-exclusions.toml
slither: install install-slither
	$(PY) scripts/slither.py

## forge-test: the in-EVM fuzz suite of contracts/test (Foundry, offline, solc-js)
forge-test: install
	node_modules/.bin/forge test

## test: everything installed, artifacts checked, lint, all tests (Slither and forge run in tests/contracts); the suites that start nodes again on PostgreSQL
# The suites that start nodes run twice: on SQLite (the embedded default), then on a real PostgreSQL server.
NODE_SUITES = tests/node tests/security tests/sdk tests/federated

test: install install-flower install-slither check-artifacts lint
	$(PY) -m pytest -q
	$(PY) -m pytest -q --database=postgres $(NODE_SUITES)
	$(FLOWER_PY) -m pytest -q tests/flower

## test-reliability: crashes (SIGKILL), chain outage, reorgs, disk failure, 60 s soak, on SQLite and on PostgreSQL (also run by CI)
test-reliability: install
	$(PY) -m pytest -q -m reliability tests/reliability
	$(PY) -m pytest -q -m reliability --database=postgres tests/reliability

test-fast: install
	$(PY) -m pytest -q -x

## demo: start a local stack and walk through a twin's lifecycle
demo: install
	$(PY) scripts/demo.py

## gas: measure gas per operation and the peer contracts' (contracts/peers, compiled at our settings); write docs/gas.md
gas: install
	$(PY) scripts/bench/gas.py

## gas-trace: where the gas of grant and grantBySig goes, from an opcode trace
gas-trace: install
	$(PY) scripts/bench/gas_trace.py

bench: gas

## bench-node: the node's reads and pushes against plain FastAPI baselines at 0, 10,000 and 100,000 stored snapshots
## (long; filled levels are kept in build/bench-fill for the next run). Quick smoke run: make bench-node ARGS=--quick
bench-node: install
	@mkdir -p build
	$(PY) scripts/bench/node.py --fill-cache build/bench-fill --work-dir build $(ARGS)

## lock: re-resolve the Python lock file after changing pyproject.toml
lock:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q pip-tools
	$(VENV)/bin/pip-compile -q --extra dev --strip-extras --no-emit-index-url --no-emit-find-links -o requirements.lock pyproject.toml
	$(VENV)/bin/pip-compile -q --no-emit-index-url --no-emit-find-links -o requirements-node.lock pyproject.toml
	$(VENV)/bin/pip-compile -q --extra dev --extra flower --strip-extras --no-emit-index-url --no-emit-find-links -o requirements-flower.lock pyproject.toml
	$(VENV)/bin/pip-compile -q --extra slither --strip-extras --no-emit-index-url --no-emit-find-links -o requirements-slither.lock pyproject.toml

chain-up: install
	$(VENV)/bin/twinledger chain up

chain-down: install
	$(VENV)/bin/twinledger chain down

clean:
	rm -rf $(VENV) $(FLOWER_VENV) $(SLITHER_VENV) build/forge node_modules .pytest_cache .mypy_cache .ruff_cache
