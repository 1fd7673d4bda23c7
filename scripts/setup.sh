#!/usr/bin/env bash
# One-command set-up on a fresh Debian machine: system packages, a virtualenv, the package and its tests' data.
# Usage: bash scripts/setup.sh [--train | --serve] [VENV_DIR]   (default: .venv in the repository)
#   --train  also the training extra (ultralytics, torch): `radiograph-deid train` and the fine-tuning tests
#   --serve  training plus serving for a lab: MONAI bundle, MONAI Label app, Orthanc (Debian) for the PACS tests
set -euo pipefail
cd "$(dirname "$0")/.."
EXTRAS="test"
case "${1:-}" in
  --train) EXTRAS="test,train"; shift ;;
  --serve) EXTRAS="test,train,serve"; shift ;;
esac
VENV="${1:-${RADIOGRAPH_DEID_VENV:-.venv}}"
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"

DEBS="tesseract-ocr"
[ "$EXTRAS" = "test,train,serve" ] && DEBS="$DEBS orthanc orthanc-dicomweb"
MISSING=""
for deb in $DEBS; do dpkg -s "$deb" >/dev/null 2>&1 || MISSING="$MISSING $deb"; done
if [ -n "$MISSING" ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $MISSING >/dev/null
fi

[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip)
"${PIP[@]}" install -q -U pip   # the stock pip 23 backtracks for ever on this stack
C=(-c scripts/constraints.txt)
if [ "$EXTRAS" != "test" ]; then
  # the torch/torchvision pair known to work together here (a lone torch wheel breaks torchvision's ops)
  "${PIP[@]}" install -q "${C[@]}" "torch==2.14.1" "torchvision==0.29.1" setuptools wheel
fi
if [ "$EXTRAS" = "test,train,serve" ]; then
  # monailabel's sam2 is built from source: against the torch above, without CUDA kernels
  SAM2_BUILD_CUDA=0 "${PIP[@]}" install -q --no-build-isolation "${C[@]}" -e ".[$EXTRAS]"
else
  "${PIP[@]}" install -q "${C[@]}" -e ".[$EXTRAS]"
fi
# rapidocr and ultralytics pull the GUI OpenCV build, which shares the cv2 module with the headless one: headless last.
"${PIP[@]}" uninstall -q -y opencv-python >/dev/null 2>&1 || true
"${PIP[@]}" install -q --force-reinstall --no-deps "opencv-python-headless>=4.8,<4.12"
"$VENV/bin/python" -c "import cv2, pydicom, onnxruntime, radiograph_deid; print('radiograph-deid', radiograph_deid.__version__, 'installed in', '$VENV')"
# what a run needs, and the whole data flow on generated radiographs: set-up fails here rather than at a site's first file
"$VENV/bin/radiograph-deid" check
