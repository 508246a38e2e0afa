#!/usr/bin/env bash
# Rate / PSNR / MS-SSIM / LPIPS per level on the development photos (estimated bpp from the
# model's likelihoods; real bytes come from the Rust codec). Writes results.md, CSVs and rd.png
# to ${SIC_WORK:-~/.cache/sic}/eval unless --out is given.
#
#   scripts/evaluate-model.sh [--ckpt FILE] [--images DIR] [--samples N] [--out DIR]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${SIC_WORK:-$HOME/.cache/sic}/venv"
# run from the caller's folder so relative --out/--ckpt paths mean what they say
export PYTHONPATH="$root/models${PYTHONPATH:+:$PYTHONPATH}"
exec nice -n "${SIC_NICE:-10}" "$venv/bin/python" -m training evaluate "$@"
