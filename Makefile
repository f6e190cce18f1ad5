# lsm-jax: `make setup`, `make test`, `make demo`.
#
# Installs are exact: `make setup` (and so `make test`, `make demo` and CI's .ci/run) installs the
# tested versions from requirements.lock, every file checked against its sha256 hash
# (`pip install --require-hashes -r requirements.lock`, then `pip install --no-deps -e .`); no lock
# tool is needed for that. requirements.txt keeps the minimum versions, for installing the package
# into an environment of your own.
#
#   make lock      rewrite requirements.lock from requirements.txt and pyproject.toml's extras `test`,
#                  `tpu` and `export` (plus the build's setuptools and pip), keeping the pins it already has
#                  wherever they still fit; uv (UV_VERSION below) runs from a throwaway venv.
#   make upgrade   `make lock` taking the newest releases allowed (UPGRADE=1), then `make test`:
#                  the one command that refreshes the lock and runs the suite. Commit the new lock
#                  only when the suite passes.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
LOCK  ?= requirements.lock
UV_VERSION := 0.13.9

# The first interpreter on PATH that is Python >= 3.12 (pyenv honours .python-version).
PYTHON ?= $(shell for p in python3.12 python3.13 python3.14 python3 python; do \
  if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; \
  then echo $$p; break; fi; done)
NO_PYTHON := make: no Python >= 3.12 found on PATH (tried python3.12, python3.13, python3.14, python3, python); install one (e.g. 'pyenv install 3.12') or pass PYTHON=/path/to/python3.12

.PHONY: setup test demo lock upgrade clean

setup: $(VENV)/.installed

# Into an existing .venv this installs only what differs from the lock (nothing is removed);
# `make clean setup` starts afresh.
$(VENV)/.installed: requirements.lock pyproject.toml
	@if [ -z "$(PYTHON)" ]; then echo "$(NO_PYTHON)" >&2; exit 1; fi
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes -r requirements.lock
	$(PY) -m pip install -q --no-deps --no-build-isolation -e .
	@touch $@

test: setup
	$(PY) -m pytest -q -n 2 --dist loadfile --durations=25 tests

demo: setup
	$(PY) -m lsm_jax.demo

# A universal lock (all platforms' hashes; libtpu only on Linux x86-64) for Python 3.12.
# The build's requirements come from pyproject.toml; pip is pinned too, as setup upgrades it.
lock:
	@if [ -z "$(PYTHON)" ]; then echo "$(NO_PYTHON)" >&2; exit 1; fi
	@set -eo pipefail; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/pip" install -q uv==$(UV_VERSION); \
	$(PYTHON) -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"], "pip", sep="\n")' \
	| "$$tmp/venv/bin/uv" pip compile --quiet --universal --python-version 3.12 --generate-hashes \
	    --custom-compile-command 'make lock' $(if $(UPGRADE),--upgrade) \
	    pyproject.toml - --extra test --extra tpu --extra export -o $(LOCK)
	@echo "make: wrote $(LOCK)"

upgrade:
	$(MAKE) lock UPGRADE=1
	$(MAKE) test

clean:
	rm -rf $(VENV) demo_out
