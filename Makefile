# Two commands do all the set-up on a fresh machine with Python 3.11 and pip:
#   make book   -- create .venv if missing, bring the executed notebooks up to date, build the site (_build/html)
#   make test   -- create .venv if missing, run the test suite, nbval on the smoke notebooks, and the -W book build
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PROFILE ?= quick
STAMP := $(VENV)/.installed

.PHONY: book test venv clean

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

venv: $(STAMP)

book: $(STAMP)
	$(PY) -m inverse_lib.batch --profile $(PROFILE) --changed-only
	$(VENV)/bin/jupyter-book build book/

test: $(STAMP)
	bash tests/run_all.sh $(PY)

clean:
	rm -rf _build
