#!/usr/bin/env bash
# One-time set-up on Debian 12: GStreamer 1.22 build/runtime packages (with its Python bindings,
# for examples/app.py and rtsp_server.py, and a C compiler, for examples/relay.c) and the ONNX Runtime shared library (taken from the pinned `onnxruntime`
# PyPI wheel, checksum verified) in .ort/.
# Idempotent: a second run only checks what is there.
#
#   scripts/setup.sh          CPU build of ONNX Runtime (default)
#   scripts/setup.sh --gpu    CUDA 13 build from `onnxruntime-gpu` (for execution-provider=cuda)
set -euo pipefail
cd "$(dirname "$0")/.."

mode=cpu
[ "${1:-}" = "--gpu" ] && mode=gpu

# --- GStreamer and build tools -------------------------------------------------------------
pkgs=(libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
      gstreamer1.0-plugins-base gstreamer1.0-plugins-good meson ninja-build pkg-config
      gcc libc6-dev python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
      gir1.2-gst-rtsp-server-1.0)
# pip (for `pip download` of the ONNX Runtime wheel) and python3 come from Debian when absent.
python3 -m pip --version >/dev/null 2>&1 || pkgs+=(python3 python3-pip)
source scripts/lib/apt.sh
ensure_debs setup "${pkgs[@]}"

# --- ONNX Runtime --------------------------------------------------------------------------
if [ "$mode" = cpu ]; then
    wheel_pkg=onnxruntime; version=1.32.0
    sha=99e1074c4b2197accd5073052a465361be17b89c093b8ffb6e6bd8f986c52df8
    dest=.ort/cpu
else
    wheel_pkg=onnxruntime-gpu; version=1.31.1
    sha=05d548956197b9d01f59b625de740e0d6be3593f874e241a12dc0362650ecdf7
    dest=.ort/gpu
fi
lib="$dest/libonnxruntime.so"
if [ ! -e "$lib" ]; then
    tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
    echo "setup: fetching $wheel_pkg==$version from PyPI"
    python3 -m pip download -q --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
        --python-version 3.12 --implementation cp "$wheel_pkg==$version" -d "$tmp"
    whl=$(ls "$tmp"/*.whl)
    got=$(sha256sum "$whl" | cut -d' ' -f1)
    if [ -n "$sha" ] && [ "$got" != "$sha" ]; then
        echo "setup: checksum mismatch for $whl: got $got, want $sha" >&2; exit 1
    fi
    mkdir -p "$dest"
    python3 - "$whl" "$dest" <<'PY'
import os, sys, zipfile
whl, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if name.startswith("onnxruntime/capi/") and ".so" in base and not base.startswith("onnxruntime_pybind"):
            with z.open(name) as src, open(os.path.join(dest, base), "wb") as dst:
                dst.write(src.read())
PY
    real=$(cd "$dest" && ls libonnxruntime.so.* | sort | tail -1)
    ln -sf "$real" "$lib"
fi
# The path tests, examples and the elements use when nothing else is set.
ln -sfn "$mode" .ort/current
echo "setup: ok (GStreamer $(pkg-config --modversion gstreamer-1.0), ONNX Runtime in $PWD/.ort/current)"
