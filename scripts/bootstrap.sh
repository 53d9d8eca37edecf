#!/usr/bin/env bash
# Create or reuse the virtual environment and install everything avatarlab needs,
# from nothing: Debian packages, the local CPU torch build first, then the package.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3.11}
APT_PKGS="espeak-ng libespeak-ng1 ffmpeg libgl1 libglib2.0-0 chromium"

missing=""
for p in $APT_PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "[bootstrap] apt-get install:$missing"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[bootstrap] creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip wheel setuptools
# The CPU build of torch must come first, or a dependency pulls the multi-GB CUDA build.
"$PY" -c "import torch, sys; sys.exit(not torch.__version__.startswith('2.13.0'))" 2>/dev/null \
  || "$PY" -m pip install -q torch==2.13.0
"$PY" -m pip install -q -e ".[all,test,dev]"
# Compile the metric kernels (SSIM, CPBD, NIQE) into numba's on-disk cache now, so a
# user's first evaluation loads them (~1 s) instead of compiling them (~30 s).
"$PY" -m avatarlab.metrics._warmup \
  || echo "[bootstrap] warning: kernel warm-up failed; the first evaluation compiles them"
echo "[bootstrap] ready: $VENV"
