#!/usr/bin/env bash
# Rate-distortion-perception evaluation: SIC (sicenc/sicparse/sicdec) against JPEG, WebP,
# H.264 intra, HEVC intra (all through GStreamer) and layered JPEG 2000 (OpenJPEG), measured
# with PSNR, MS-SSIM, LPIPS-Alex and DISTS. Writes out/rd/points.csv, docs/results.md and
# docs/results/*.png.
#
#   scripts/rd-eval.sh            full run: 8 photos, all settings, every SIC level
#   scripts/rd-eval.sh --quick    2 photos, fewer settings (a few minutes on 2 cores); writes
#                                 out/rd-quick/ (points.csv, results.md, results/) only
#   scripts/rd-eval.sh --help     every option of `python -m evaluation`
#
# Installs what it needs: Debian GStreamer plugin packages and OpenJPEG tools (apt-get), a
# Python venv at ${SIC_WORK:-~/.cache/sic}/venv, and runs `cargo build --release` for
# target/release/libgstsic.so (skip with SIC_NO_BUILD=1; if there is no plugin the classical
# codecs are still evaluated and results.md says why SIC is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
work=${SIC_WORK:-$HOME/.cache/sic}
export SIC_WORK=$work

# --- Debian packages ------------------------------------------------------------------------
pkgs=(gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
      gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav libopenjp2-tools
      python3-venv)
source scripts/lib/apt.sh
ensure_debs rd-eval "${pkgs[@]}"

# --- Python venv ----------------------------------------------------------------------------
venv=$work/venv
if [ ! -x "$venv/bin/python" ]; then
    echo "rd-eval: creating $venv"
    mkdir -p "$work"
    python3 -m venv "$venv"
fi
if ! "$venv/bin/python" -c "import numpy, PIL, torch, torchvision, scipy, matplotlib, skimage, sklearn, pytorch_msssim, lpips" 2>/dev/null; then
    echo "rd-eval: installing Python packages into $venv"
    "$venv/bin/python" -m pip install -q -r models/evaluation/requirements.txt
fi

# --- the SIC plugin -------------------------------------------------------------------------
if [ ! -e .ort/current/libonnxruntime.so ] && [ -x scripts/setup.sh ]; then
    scripts/setup.sh || echo "rd-eval: scripts/setup.sh failed; SIC may not load" >&2
fi
export ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$repo/.ort/current/libonnxruntime.so}
# (re)build unless SIC_NO_BUILD=1; a no-op when target/release is up to date
if [ "${SIC_NO_BUILD:-0}" != 1 ] && command -v cargo >/dev/null; then
    echo "rd-eval: cargo build --release"
    if ! nice -n 10 cargo build --release -q; then
        if [ -e target/release/libgstsic.so ]; then
            echo "rd-eval: cargo build failed; evaluating the existing target/release/libgstsic.so" >&2
        else
            echo "rd-eval: cargo build failed; SIC will be skipped (see docs/results.md)" >&2
        fi
    fi
fi

# --- run ------------------------------------------------------------------------------------
cmd="scripts/rd-eval.sh${*:+ $*}"
# from the checkout's root, so relative --out/--docs/--model paths mean what the caller typed
export PYTHONPATH="$repo/models${PYTHONPATH:+:$PYTHONPATH}"
exec nice -n 10 "$venv/bin/python" -m evaluation --command "$cmd" "$@"
