# fivegmc — two commands on a fresh Debian machine:
#   make run   set up and run the simulator on the embedded default profile (profiles/lab.toml)
#   make test  set up and run the whole test suite
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROFILE ?= profiles/lab.toml

.PHONY: run test setup sysdeps lint typecheck unit bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,speed,redis]'
	touch $(STAMP)

setup: $(STAMP)

# Debian packages the tests and benchmarks use as real peers; installed only when missing.
sysdeps:
	@missing=""; \
	command -v sipp >/dev/null || missing="$$missing sip-tester"; \
	command -v tshark >/dev/null || missing="$$missing tshark"; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO="sudo"; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

run: $(STAMP)
	$(BIN)/fivegmc run --profile $(PROFILE)

lint: $(STAMP)
	$(BIN)/ruff check fivegmc tests bench
	$(BIN)/mypy

test: $(STAMP) sysdeps lint
	$(BIN)/pytest -q

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit tests/property

bench: $(STAMP) sysdeps
	$(BIN)/python bench/sip_step.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .hypothesis
