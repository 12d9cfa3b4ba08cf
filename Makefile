# semreg: `make run` starts the registry, `make test` runs every check and test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
PG_URL := $(shell $(PYTHON) scripts/pg_url.py)

.PHONY: run test check unit e2e bench system-deps clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -c constraints.txt pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/semreg serve --data ./data --host 127.0.0.1 --port 5000

# Debian packages the end-to-end tests drive.
system-deps:
	@command -v skopeo >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq skopeo; }

check: $(STAMP)
	$(BIN)/ruff format --check src tests bench
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: $(STAMP) system-deps check
	rm -f .coverage .coverage.*
	SEMREG_TEST_DATABASE_URL="$(PG_URL)" SEMREG_TEST_COVERAGE=1 \
		$(BIN)/coverage run -m pytest $(PYTEST_ARGS)
	$(BIN)/coverage combine -q
	$(BIN)/coverage report --fail-under=85

unit: $(STAMP)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

bench: $(STAMP) system-deps
	$(BIN)/python -m bench.run_all

clean:
	rm -rf $(VENV) .coverage .coverage.* .mypy_cache .ruff_cache
