# lsm-jax: `make setup`, `make test`, `make demo`.
SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python

# The first interpreter on PATH that is Python >= 3.12 (pyenv honours .python-version).
PYTHON ?= $(shell for p in python3.12 python3.13 python3.14 python3 python; do \
  if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; \
  then echo $$p; break; fi; done)

.PHONY: setup test demo clean

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	@if [ -z "$(PYTHON)" ]; then \
	  echo "make: no Python >= 3.12 found on PATH (tried python3.12, python3.13, python3.14, python3, python); install one (e.g. 'pyenv install 3.12') or pass PYTHON=/path/to/python3.12" >&2; exit 1; fi
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt -e '.[test,tpu]'
	@touch $@

test: setup
	$(PY) -m pytest -q --durations=25 tests

demo: setup
	$(PY) -m lsm_jax.demo

clean:
	rm -rf $(VENV) demo_out
