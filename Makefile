# The whole set-up on a fresh machine (Python 3.11 + pip). `make demo`, `make test`,
# `make example NAME=basic`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
HASH   := $(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# What the demo and the examples need (snakepit and its runtime dependencies) ...
STAMP  := $(VENV)/.installed-$(HASH)
# ... and, for `make test` only, the test toolchain on top (with the Ray extra: tests/ray runs a
# real Ray cluster on loopback).
TEST_STAMP := $(VENV)/.installed-test-$(HASH)

.PHONY: demo example test proto clean runtimes bench

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(VENV)/bin/python pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e .
	rm -f $(VENV)/.installed-[0-9]*
	touch $@

$(TEST_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[test,ray]' || { \
	  echo "WARNING: the ray extra cannot be installed here: tests/ray will skip"; \
	  $(PY) -m pip install --quiet -e '.[test]'; }
	rm -f $(VENV)/.installed-test-*
	touch $@

demo: $(STAMP)
	$(VENV)/bin/snakepit demo

# Run examples/NAME.py with the project's interpreter: `make example NAME=sessions`.
example: $(STAMP)
	@test -n "$(NAME)" || { echo "usage: make example NAME=<one of: $$(ls examples | sed -n 's/\.py$$//p' | tr '\n' ' ')>"; exit 2; }
	$(PY) examples/$(NAME).py

# The Ruby worker needs Debian's ruby + ruby-grpc (no gems from the network). As root (CI) we
# install them; otherwise the Ruby tests skip with a reason (and fail when CI=true).
# Node.js dependencies are installed by NodeAdapter on first use (npm ci into the state dir).
runtimes:
	@if command -v ruby >/dev/null 2>&1 && ruby -e 'require "grpc"' >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "installing ruby and ruby-grpc (Debian packages) for the Ruby worker"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ruby ruby-grpc >/dev/null; \
	else echo "ruby with grpc is missing and we are not root: Ruby worker tests will skip"; fi

# Two test processes (pytest-xdist): the tests mostly wait on worker processes; a module's tests
# stay in one process (module fixtures). `make test PYTEST_FLAGS=` runs them in one.
PYTEST_FLAGS ?= -n 2 --dist loadfile
test: $(TEST_STAMP) runtimes
	$(PY) -m mypy snakepit snakepit_bridge
	$(PY) -m pytest $(PYTEST_FLAGS)

# Bytecode first, as a regular install has it: the editable install under
# PYTHONDONTWRITEBYTECODE=1 would make every worker compile snakepit_bridge from source
# (23 ms of CPU per worker start, ADR 0003 "Start and memory").
bench: $(TEST_STAMP)
	$(PY) -m compileall -q snakepit snakepit_bridge >/dev/null
	$(PY) benchmarks/run_all.py

proto: $(TEST_STAMP)
	$(PY) -m snakepit_bridge._protogen

clean:
	rm -rf $(VENV) build *.egg-info
