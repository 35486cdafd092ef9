#!/usr/bin/env bash
# The whole test suite, as CI runs it (.ci/run -> make test -> this):
#   1. the unit tests (pytest, CPU, slow ones deselected);
#   2. nbval: re-execute the stored smoke-profile notebooks and compare their rounded summary outputs,
#      so a change that alters results fails until the stored outputs are regenerated on purpose
#      (python -m inverse_lib.batch --profile smoke --force);
#   3. the book build with every warning fatal, and a check that the site shows Figs 3-4 and Tables 2-3.
set -euo pipefail
PY=${1:-.venv/bin/python}
BIN=$(dirname "$PY")
export MPLBACKEND=Agg
# nbval and the smoke notebooks use their own model cache, so they never mix with a user's trained models
export INVERSE_LIB_CACHE=${INVERSE_LIB_CACHE_TEST:-$(mktemp -d)}

echo "== unit tests"
"$PY" -m pytest -q -m "not slow" tests

echo "== nbval on the smoke notebooks"
SMOKE=()
for nb in tasks_overview ballistics sine_wave robotic_arm meta_material fig3 fig4 table2 table3 time ablations \
          results user_task provenance; do
    SMOKE+=("tests/smoke/$nb.ipynb")
done
"$PY" -m pytest -q -p no:cacheprovider --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
    --nbval-cell-timeout 900 "${SMOKE[@]}"

echo "== book build (warnings are errors)"
rm -rf _build
"$BIN/jupyter-book" build book/ --all -W --keep-going
"$PY" tests/check_site.py _build/html
