#!/usr/bin/env bash
# Export the checkpoint ${SIC_WORK:-~/.cache/sic}/ckpt/sic-lite.pt into models/sic-lite and verify
# the ONNX graphs against PyTorch on the golden tensors (max abs err <= 1e-4).
#
#   scripts/export.sh                      the default checkpoint
#   scripts/export.sh --ckpt FILE          another checkpoint
#   scripts/export.sh --untrained          a random initialisation (contract tests only)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${SIC_WORK:-$HOME/.cache/sic}/venv"
# run from the caller's folder so relative --out/--ckpt paths mean what they say
export PYTHONPATH="$root/models${PYTHONPATH:+:$PYTHONPATH}"
exec "$venv/bin/python" -m training export "$@"
