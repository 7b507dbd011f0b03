# Two commands do everything on a fresh machine: `make run` (train + evaluate LeNet-5) and `make test`.
VENV   ?= .venv
PYTHON ?= python3
STAMP  := $(VENV)/.installed-stamp
RUN_DIR ?= runs/$(shell date +%Y%m%d-%H%M%S)-lenet5

.PHONY: setup run test quick lint format clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -c constraints.txt -e '.[train,serve,dev,scale]'
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(VENV)/bin/digitrec train --model lenet5 --out $(RUN_DIR)

test: setup
	$(VENV)/bin/python -m pytest

# The suite without the tests marked slow (those that train a real model).
quick: setup
	$(VENV)/bin/python -m pytest -m "not slow"

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) build *.egg-info
