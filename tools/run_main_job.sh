#!/usr/bin/env bash
# The main job: set up what is missing, then train MDETR* on SynthRef (the embedded default, generated on
# first use under data/synthref) and evaluate the best checkpoint on val/testA/testB.
# Usage: bash tools/run_main_job.sh [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup_env.sh
PY=${PYTHON:-python3}
CONFIG=configs/mdetr/mdetr-star_r18-slim_bert-mini_1xb32-3e_synthref.py
WORK_DIR=${1:-work_dirs/synthref_main}
"$PY" tools/train.py "$CONFIG" --work-dir "$WORK_DIR"
BEST=$(ls -t "$WORK_DIR"/best_refexp_Prec@1_*.pth 2>/dev/null | head -n 1)
[[ -n "$BEST" ]] || { echo "no best checkpoint in $WORK_DIR" >&2; exit 1; }
"$PY" tools/test.py "$CONFIG" "$BEST" --work-dir "$WORK_DIR/test" --out "$WORK_DIR/test/synthref"
