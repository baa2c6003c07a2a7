# The two set-up commands of the README:
#   make run   - install and start Stepstone on the embedded default (SQLite)
#   make test  - install and run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test install install-test bench bench-compare load mutation clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Reinstall only when the dependency list changes.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed-run

install: $(VENV)/.installed-run
install-test: $(VENV)/.installed-test

# manage.py serve: bootstrap, then daphne and the workers under honcho; Ctrl-C stops both.
run: install
	$(BIN)/python manage.py serve --host $(HOST) --port $(PORT)

test: install-test
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: install
	$(BIN)/python benchmarks/reference.py

bench-compare: install
	$(BIN)/python benchmarks/compare.py

# Hundreds of runs through real workers, web servers and websocket clients (LOAD_ARGS="--runs 600").
load: install
	$(BIN)/python benchmarks/load.py $(LOAD_ARGS)

# Mutation testing of the seams (services, lifecycle, worker, checkpoint rows, websockets,
# API views) with mutmut; not part of CI: it takes a while. Results: .venv/bin/mutmut results
mutation: install-test
	$(BIN)/python -m pip install --quiet -e '.[test,mutation]'
	rm -rf mutants
	$(BIN)/mutmut run $(MUTMUT_ARGS)
	$(BIN)/python scripts/mutation_score.py

clean:
	rm -rf $(VENV) var .pytest_cache mutants
