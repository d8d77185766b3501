# Every target bootstraps its own virtualenv from nothing: `make test` on a fresh clone just works.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench package clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,cloud]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/vpcprobe serve --demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	$(BIN)/python scripts/bench_probe.py

# Code directories for `s deploy`: one per function, dependencies built for the FC runtime's
# Python with pip's platform options (no Docker). FC_PYTHON must match the runtime in s.yaml.
FC_PYTHON ?= 3.10
CONFIG    ?= vpcprobe.yaml
package: $(STAMP)
	$(BIN)/python scripts/package.py --python-version $(FC_PYTHON) --config $(CONFIG)

clean:
	rm -rf $(VENV) build .pytest_cache
