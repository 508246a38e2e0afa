#!/usr/bin/env bash
# Set up the Python environment and data outside git, then train SIC-lite (resumable).
#
#   scripts/train.sh                       train on the CPU until interrupted (Ctrl-C saves)
#   scripts/train.sh --minutes 60          stop after an hour (checkpoint kept; run again to go on)
#   scripts/train.sh --bf16                bfloat16 g_a/g_s: about 1.8x faster on CPUs with AMX
#   scripts/train.sh --device cuda         on a GPU
#
# Everything lives under ${SIC_WORK:-~/.cache/sic}: venv/, data/, ckpt/sic-lite.pt, lpips/.
# Without a checkpoint (a fresh machine), training goes on from the shipped bundle's weights
# (`python -m training restore`); --from-scratch starts a new model instead.
# Any option is passed to `python -m training train` (see --help).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
work="${SIC_WORK:-$HOME/.cache/sic}"
venv="$work/venv"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" || { echo "train.sh: needs python3-venv (apt-get install python3-venv)" >&2; exit 1; }
fi
if ! "$venv/bin/python" -c "import torch, onnx, onnxruntime, lpips, pytorch_msssim, skimage, sklearn" 2>/dev/null; then
    "$venv/bin/pip" install -q -r "$root/models/requirements.txt"
fi
export PYTHONPATH="$root/models${PYTHONPATH:+:$PYTHONPATH}"   # relative paths stay the caller's
# training photos (apt-get download + dpkg-deb -x, downscaled by 2) and evaluation photos
"$venv/bin/python" -m training data
exec nice -n "${SIC_NICE:-10}" "$venv/bin/python" -m training train "$@"
