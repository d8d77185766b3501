# Every target bootstraps its own virtualenv from nothing: `make test` on a fresh clone just works.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Tests run against the libraries FC's runtime ships (oss2 2.16.0), not the newest ones.
CONSTRAINTS := fc-runtime-constraints.txt

.PHONY: demo test test-pythons lint bench package clean mutation fuzz

# One stamp per set of extras: the demo needs the local tools and the gateway (serve runs it beside
# the schedule), everything else all of them.
DEMO_STAMP := $(VENV)/.installed-demo
define install
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c $(CONSTRAINTS) -e '.[$(1)]'
	touch $@
endef
ALL_EXTRAS := dev,cloud,local,gateway
DEMO_EXTRAS := local,gateway

$(STAMP): pyproject.toml $(CONSTRAINTS)
	$(call install,$(ALL_EXTRAS))

$(DEMO_STAMP): pyproject.toml $(CONSTRAINTS)
	$(call install,$(DEMO_EXTRAS))

demo: $(DEMO_STAMP)
	$(BIN)/vpcprobe serve --demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# The fuzz suite's long profile (tests/fuzz, issue 11): over 10,000 generated configs, YAML, events, schedules
# and URLs; `make test` runs the same properties with the short `ci` profile. Prints the cases per property.
fuzz: $(STAMP)
	VPCPROBE_FUZZ=long $(BIN)/pytest tests/fuzz -p no:cacheprovider --hypothesis-show-statistics

bench: $(STAMP)
	$(BIN)/python scripts/bench_probe.py
	$(BIN)/python scripts/bench_scheduling.py --repeat 1
	$(BIN)/python scripts/bench_tokens.py
	$(BIN)/python scripts/bench_alerts.py
	$(BIN)/python scripts/bench_cold_start.py
	$(BIN)/python scripts/bench_gateway.py --quick
	$(BIN)/python scripts/bench_gateway_instructions.py --requests 300  # instruction counts (apt-get install -y valgrind)
	$(BIN)/python scripts/bench_blackbox.py  # side by side with blackbox_exporter (apt-get install -y prometheus-blackbox-exporter)

# Mutation testing of the core modules (issue 11): mutmut, one module at a time, only the tests that reach
# each mutated function; prints killed / survived / equivalent per module. Long (not part of `make test`).
# One module: make mutation MODULES=shared/alerts/policy.py; a time cap per module (the rest reported as
# unchecked): make mutation MUTATION_ARGS='--minutes 5 --max-children 2'
MUTATION_STAMP := $(VENV)/.installed-mutation
MODULES ?=
MUTATION_ARGS ?=
MUTATION_EXTRAS := $(ALL_EXTRAS),mutation
$(MUTATION_STAMP): pyproject.toml $(CONSTRAINTS)
	$(call install,$(MUTATION_EXTRAS))

mutation: $(MUTATION_STAMP)
	$(BIN)/python scripts/mutation.py --report mutants/report.md $(MUTATION_ARGS) $(MODULES)

# Code directories for `s deploy`: one per function, dependencies built for the FC runtime's
# Python with pip's platform options (no Docker), .pyc compiled by that Python (it must be
# installed: pyenv's or on PATH). FC_PYTHON must match the runtime in s.yaml.
FC_PYTHON ?= 3.10
CONFIG    ?= vpcprobe.yaml
package: $(STAMP)
	$(BIN)/python scripts/package.py --python-version $(FC_PYTHON) --config $(CONFIG)

clean:
	rm -rf $(VENV) .venv-3.* build .pytest_cache

# The FC runtimes are python3.10 and python3.12: run the whole suite under each one found
# (pyenv's or on PATH), each in its own virtualenv, reinstalled when pyproject.toml or the
# constraints change. Missing interpreters are reported, not faked.
FC_PYTHONS ?= 3.10 3.12
test-pythons:
	@for v in $(FC_PYTHONS); do \
	  py=$$(ls -d $$HOME/.pyenv/versions/$$v.*/bin/python 2>/dev/null | sort -V | tail -n 1); \
	  [ -n "$$py" ] || py=$$(command -v python$$v); \
	  if [ -z "$$py" ] || ! $$py -c '' 2>/dev/null; then echo "python$$v not found: skipped"; continue; fi; \
	  echo "== python$$v ($$py)"; \
	  stamp=.venv-$$v/.installed; \
	  if [ ! -f $$stamp ] || [ pyproject.toml -nt $$stamp ] || [ $(CONSTRAINTS) -nt $$stamp ]; then \
	    $$py -m venv .venv-$$v && .venv-$$v/bin/pip install --quiet --upgrade pip && \
	    .venv-$$v/bin/pip install --quiet -c $(CONSTRAINTS) -e '.[$(ALL_EXTRAS)]' && touch $$stamp || exit 1; \
	  fi; \
	  .venv-$$v/bin/pytest -p no:cacheprovider || exit 1; \
	done
