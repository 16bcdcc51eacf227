# Two commands do everything on a fresh clone: `make run` and `make test`.
# Each creates .venv when it is missing and installs exactly what uv.lock pins: a release made
# upstream after the lock cannot change what runs here. uv itself is pinned below and installed
# with pip into .uv/ on first use.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
UV := .uv/bin/uv
ARGS ?=

# uv installs into .venv, never downloads an interpreter, and never touches the lock unless
# asked to (`make lock`).
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV_PYTHON_DOWNLOADS := never
export UV_NO_PROGRESS := 1

.PHONY: run test lint typecheck pytest test-all latest bench lock lock-upgrade lock-check clean

$(UV):
	@test -n "$(PYTHON)" || { echo "error: Python 3.11 or newer is required (python3.11+ on PATH)"; exit 1; }
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --target .uv uv==$(UV_VERSION)

# The runtime dependencies only, as the Docker image has them.
$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --quiet --locked --no-dev --python "$(PYTHON)"
	@touch $@

# Everything: runtime, the dev group (lint, types, tests) and the bench group (peers measured).
# It satisfies `run` too, so that switching between `make test` and `make run` installs nothing.
$(VENV)/.installed-dev: pyproject.toml uv.lock | $(UV)
	$(UV) sync --quiet --locked --group dev --group bench --python "$(PYTHON)"
	@touch $@ $(VENV)/.installed

run: $(VENV)/.installed
	$(BIN)/python -m polymarket_agents $(ARGS)

# Fails when pyproject.toml changed without `make lock`.
lock-check: | $(UV)
	$(UV) lock --check --python "$(PYTHON)"

# Re-resolve after editing pyproject.toml, keeping every pin that still fits.
lock: | $(UV)
	$(UV) lock --python "$(PYTHON)"

# Move every pin to the newest release pyproject.toml allows.
lock-upgrade: | $(UV)
	$(UV) lock --upgrade --python "$(PYTHON)"

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

pytest: $(VENV)/.installed-dev
	$(BIN)/python -X dev -m pytest -q $(ARGS)

test: lock-check lint typecheck pytest

# The test suite on every supported Python (3.11, 3.12, 3.13), each from the lock, through nox.
# Under pyenv, every installed version is made visible so that nox finds python3.12 and python3.13.
NOX_ENV = PATH="$(abspath .uv/bin):$$PATH" \
	PYENV_VERSION="$${PYENV_VERSION:-$$(pyenv versions --bare 2>/dev/null | tr '\n' ':')}"

test-all: $(VENV)/.installed-dev
	$(NOX_ENV) $(BIN)/nox -s tests

# Lint, types and tests against the newest releases of everything, ignoring the lock: upstream
# breakage shows here before a `make lock-upgrade` brings it to users.
latest: $(VENV)/.installed-dev
	$(NOX_ENV) $(BIN)/nox -s latest

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/run.py $(ARGS)

clean:
	rm -rf $(VENV) .uv .mypy_cache .pytest_cache .ruff_cache .nox build dist
