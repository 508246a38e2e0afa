#!/usr/bin/env bash
# The whole test suite: set-up, formatting, lints, Rust tests (unit, codec, elements, pipelines),
# the Python and C example applications,
# and the Python model tests when the training venv exists (they need torch; the Rust tests never do).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export ORT_DYLIB_PATH="$PWD/.ort/current/libonnxruntime.so"

echo "== bash -n (every shell script parses)"
for f in scripts/*.sh scripts/lib/*.sh .ci/run; do bash -n "$f"; done
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --quiet --all-targets -- -D warnings
echo "== cargo test"
G_DEBUG=fatal_warnings cargo test --all-targets 2>&1
cargo test --doc 2>&1
echo "== examples/app.py (the elements from Python, through GObject introspection)"
cargo build --quiet --lib
GST_PLUGIN_PATH="$PWD/target/debug" /usr/bin/python3 examples/app.py
echo "== examples/relay.c (the elements from C: one encoder, receivers at 1 then 2, 4 and 8 layers)"
cc -O2 -Wall -Wextra -Werror examples/relay.c -o target/relay \
    $(pkg-config --cflags --libs gstreamer-app-1.0 gstreamer-video-1.0) -lm
GST_PLUGIN_PATH="$PWD/target/debug" target/relay
echo "== examples/rtsp_server.py --check (one encoder, RTSP clients at 1, 3 and all layers)"
GST_PLUGIN_PATH="$PWD/target/debug" timeout 120 /usr/bin/python3 examples/rtsp_server.py --check

venv="${SIC_WORK:-$HOME/.cache/sic}/venv"
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "import torch" 2>/dev/null; then
    echo "== pytest (models/training, models/evaluation)"
    (cd models && "$venv/bin/python" -m pytest -q training/tests evaluation/tests)
else
    echo "== pytest skipped: no training venv at $venv (scripts/train.sh creates it)"
fi
