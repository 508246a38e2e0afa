#!/usr/bin/env bash
# GPU check: the elements with execution-provider=cuda in gst-launch pipelines (frames per
# second at 1280x720 and 1920x1080), the cross-device decode check (encode on the GPU, decode on
# the CPU and the reverse), and the per-stage speed benchmark on CUDA and CPU.
#
# Needs: an NVIDIA GPU, ONNX Runtime's GPU build (ORT_DYLIB_PATH; `scripts/setup.sh --gpu`), the
# GStreamer 1.22 runtime, and the binaries built with the `cuda` feature. On a machine with cargo:
#     scripts/gpu-check.sh --build          # builds, then runs
# On a machine without cargo (the remote GPU machine), prepare here with
#     scripts/gpu-check.sh --prepare        # builds and copies everything needed into .gpu/run
# then run there: `GST_PLUGIN_PATH=$PWD/.gpu/run bash .gpu/run/gpu-check.sh` (results in $OUT).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
if [ "${1:-}" = "--build" ] || [ "${1:-}" = "--prepare" ]; then
    cd "$here/.."
    cargo build --release --features cuda --lib --example bench --example cross_device || exit 1
    if [ "$1" = "--prepare" ]; then
        mkdir -p .gpu/run
        cp target/release/libgstsic.so target/release/examples/bench \
            target/release/examples/cross_device scripts/gpu-check.sh .gpu/run/
        cp tests/data/ladybird-256x192.png .gpu/run/photo.png
        echo "prepared .gpu/run (the model travels with the tree in models/sic-lite)"
        exit 0
    fi
    bin=target/release
    export GST_PLUGIN_PATH="$PWD/target/release"
    bench="$bin/examples/bench"; cross="$bin/examples/cross_device"
    photo=tests/data/ladybird-256x192.png
else
    # Running from .gpu/run inside the checkout copy.
    cd "$here/../.."
    bench="$here/bench"; cross="$here/cross_device"; photo="$here/photo.png"
    export GST_PLUGIN_PATH="${GST_PLUGIN_PATH:-$here}"
fi
export SIC_MODEL_DIR="${SIC_MODEL_DIR:-$PWD/models/sic-lite}"
sizes="${SIC_CHECK_SIZES:-1280x720 1920x1080}"   # override for a quick dry run
out="${OUT:-out/gpu}"
mkdir -p "$out"
log="$out/gpu-check.log"
: > "$log"
say() { echo "$*" | tee -a "$log"; }

say "== $(date -u +%FT%TZ) $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null)"
say "== gst-inspect-1.0 sicenc (execution-provider)"
gst-inspect-1.0 sicenc 2>&1 | grep -A3 execution-provider | tee -a "$log"

# Frames per second through gst-launch: time N frames and 1 frame, so start-up (model load,
# CUDA kernel selection) cancels out.
now() { date +%s.%N; }
run_timed() { local s; s=$(now)
              eval "gst-launch-1.0 -q $1" >>"$log" 2>&1 || return 1
              awk -v a="$s" -v b="$(now)" 'BEGIN { print b - a }'; }
fps() { # fps WxH "ELEMENTS..."
    local size=$1 w h n=60 tn t1 src
    w=${size%x*}; h=${size#*x}
    src="videotestsrc pattern=smpte num-buffers"
    caps="video/x-raw,width=$w,height=$h,framerate=30/1 ! videoconvert"
    tn=$(run_timed "$src=$n ! $caps ! $2") || { echo failed; return; }
    t1=$(run_timed "$src=1 ! $caps ! $2") || { echo failed; return; }
    awk -v n="$n" -v a="$tn" -v b="$t1" 'BEGIN { printf "%.2f", (n - 1) / (a - b) }'
}

say "== gst-launch-1.0 frames per second (execution-provider=cuda)"
printf '%-10s %-12s %10s %10s\n' size provider "encode fps" "enc+dec fps" | tee -a "$log"
for size in $sizes; do
    for ep in cuda cpu; do
        e=$(fps "$size" "sicenc execution-provider=$ep ! fakesink")
        ed=$(fps "$size" "sicenc execution-provider=$ep ! sicdec execution-provider=$ep ! fakesink")
        printf '%-10s %-12s %10s %10s\n' "$size" "$ep" "$e" "$ed" | tee -a "$log"
    done
done

say "== strict mode: execution-provider=cuda must run on CUDA (an error here means no silent CPU fallback)"
gst-launch-1.0 -q videotestsrc num-buffers=2 ! videoconvert ! sicenc execution-provider=cuda ! sicdec execution-provider=cuda ! fakesink >>"$log" 2>&1 \
    && say "strict cuda pipeline: ok" || say "strict cuda pipeline: FAILED (see log)"

say "== cross-device decode (GPU-encoded on CPU and back)"
"$cross" --model "$SIC_MODEL_DIR" "$photo" 2>&1 | tee -a "$log"

say "== per-stage benchmark"
for ep in cuda cpu; do
    "$bench" --provider "$ep" --sizes "${sizes// /,}" --frames 10 --model "$SIC_MODEL_DIR" 2>&1 | tee -a "$log"
done
say "== results in $log"
