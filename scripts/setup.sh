#!/usr/bin/env bash
# One-command set-up on a fresh Debian machine: system packages, a virtualenv, the package and its tests' data.
# Usage: bash scripts/setup.sh [--train] [VENV_DIR]   (default: .venv in the repository)
#   --train  also the training extra (ultralytics, torch): for `radiograph-deid train` and the fine-tuning test
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="test"
if [ "${1:-}" = "--train" ]; then EXTRAS="test,train"; shift; fi
VENV="${1:-${RADIOGRAPH_DEID_VENV:-.venv}}"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"

if ! command -v tesseract >/dev/null 2>&1; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq tesseract-ocr >/dev/null
fi

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/python" -m pip install -q -U pip   # the stock pip 23 backtracks for ever on this stack
if [ "$EXTRAS" = "test,train" ]; then
  # the torch/torchvision pair known to work together here (a lone torch wheel breaks torchvision's ops)
  "$VENV/bin/python" -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
fi
"$VENV/bin/python" -m pip install -q -e ".[$EXTRAS]"
# rapidocr pulls the GUI OpenCV build, which shares the cv2 module with the headless one: headless last.
"$VENV/bin/python" -m pip uninstall -q -y opencv-python >/dev/null 2>&1 || true
"$VENV/bin/python" -m pip install -q --force-reinstall --no-deps "opencv-python-headless>=4.8,<4.12"
"$VENV/bin/python" -c "import cv2, pydicom, onnxruntime, radiograph_deid; print('radiograph-deid', radiograph_deid.__version__, 'ready in', '$VENV')"
