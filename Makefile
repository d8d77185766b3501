# Every target bootstraps its own virtualenv from nothing: `make test` on a fresh clone just works.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test test-pythons lint bench package clean

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
	$(BIN)/python scripts/bench_tokens.py
	$(BIN)/python scripts/bench_alerts.py

# Code directories for `s deploy`: one per function, dependencies built for the FC runtime's
# Python with pip's platform options (no Docker). FC_PYTHON must match the runtime in s.yaml.
FC_PYTHON ?= 3.10
CONFIG    ?= vpcprobe.yaml
package: $(STAMP)
	$(BIN)/python scripts/package.py --python-version $(FC_PYTHON) --config $(CONFIG)

clean:
	rm -rf $(VENV) .venv-3.* build .pytest_cache

# The FC runtimes are python3.10 and python3.12: run the whole suite under each one found
# (pyenv's or on PATH), each in its own virtualenv. Missing interpreters are reported, not faked.
FC_PYTHONS ?= 3.10 3.12
test-pythons:
	@for v in $(FC_PYTHONS); do \
	  py=$$(ls -d $$HOME/.pyenv/versions/$$v.*/bin/python 2>/dev/null | tail -n 1); \
	  [ -n "$$py" ] || py=$$(command -v python$$v); \
	  if [ -z "$$py" ] || ! $$py -c '' 2>/dev/null; then echo "python$$v not found: skipped"; continue; fi; \
	  echo "== python$$v ($$py)"; \
	  [ -x .venv-$$v/bin/pytest ] || { $$py -m venv .venv-$$v && .venv-$$v/bin/pip install --quiet --upgrade pip && \
	    .venv-$$v/bin/pip install --quiet -e '.[dev,cloud]'; } || exit 1; \
	  .venv-$$v/bin/pytest -p no:cacheprovider || exit 1; \
	done
