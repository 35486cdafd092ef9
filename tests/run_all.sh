#!/usr/bin/env bash
# The whole test suite: unit tests, then (once they exist) nbval over the smoke notebooks and the -W book build.
set -euo pipefail
PY=${1:-.venv/bin/python}
BIN=$(dirname "$PY")
"$PY" -m pytest -q -m "not slow" tests
