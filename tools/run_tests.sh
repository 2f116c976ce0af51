#!/usr/bin/env bash
# The test command: set up what is missing (pytest and ruff included), lint, then run the test suite.
# Usage: bash tools/run_tests.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh --tests
PY=${PYTHON:-python3}
"$PY" -m ruff check mmvlg tools tests demo configs projects
"$PY" -m pytest -q tests "$@"
