# Two commands do everything on a fresh machine: `make run` (train + evaluate LeNet-5) and `make test`.
VENV      ?= .venv
PYTHON    ?= python3
# make test installs every extra and the test tools; make run only [train], what training needs.
STAMP     := $(VENV)/.installed-stamp
RUN_STAMP := $(VENV)/.run-stamp
RUN_DIR   ?= runs/$(shell date +%Y%m%d-%H%M%S)-lenet5

.PHONY: setup run test quick lint format docs clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip

$(RUN_STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[train]'
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml constraints.txt | $(VENV)/bin/python
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[train,serve,dev,scale]'
	touch $(STAMP)

setup: $(STAMP)

run: $(RUN_STAMP)
	$(VENV)/bin/digitrec train --model lenet5 --out $(RUN_DIR)
	@echo "digitrec is installed in $(VENV): run 'source $(VENV)/bin/activate' to use digitrec, or call $(VENV)/bin/digitrec"

test: setup
	$(VENV)/bin/python -m pytest

# The suite without the tests marked slow (those that train a real model).
quick: setup
	$(VENV)/bin/python -m pytest -m "not slow"

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(VENV)/bin/lint-imports --no-cache

format: setup
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

# The documentation site, rebuilt as its pages change.
docs: setup
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs serve --dev-addr 127.0.0.1:8000

clean:
	rm -rf $(VENV) build site *.egg-info
