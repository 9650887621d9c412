# The two commands of SPEC §2: `make demo` and `make test`. Both create/update .venv first.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint venv clean

venv: $(STAMP)

# Re-install only when the package metadata changes (a plain rerun is a no-op).
$(STAMP): pyproject.toml
	@set -e; \
	if [ ! -x $(PY) ]; then \
	  base=$$(sh tools/find_python.sh); \
	  echo "creating $(VENV) with $$base"; \
	  $$base -m venv $(VENV); \
	fi; \
	$(PY) -m pip install -q --upgrade pip; \
	$(PY) -m pip install -q -e '.[test]'; \
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

# The long statistical tests (none yet: exit status 5, "no tests collected", is not a failure).
test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow || [ $$? -eq 5 ]

lint: $(STAMP)
	$(VENV)/bin/ruff check bayes_sc tests benchmarks
	$(VENV)/bin/ruff format --check bayes_sc tests benchmarks

demo: $(STAMP)
	$(VENV)/bin/bayes-sc demo -o demo_out

clean:
	rm -rf $(VENV) demo_out build dist
