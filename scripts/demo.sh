#!/usr/bin/env bash
# The main job: encode a photo with the shipped model through real gst-launch-1.0 pipelines at
# every level, write each level as a .sic file, decode it back through sicparse ! sicdec, and
# report real bytes, bits per pixel (every byte of the file counted) and PSNR per level.
#
#   scripts/demo.sh [image.png] [output-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release --quiet --lib --example compare

img="${1:-tests/data/ladybird-256x192.png}"
out="${2:-out/demo}"
mkdir -p "$out"
export GST_PLUGIN_PATH="$PWD/target/release${GST_PLUGIN_PATH:+:$GST_PLUGIN_PATH}"
export ORT_DYLIB_PATH="${ORT_DYLIB_PATH:-$PWD/.ort/current/libonnxruntime.so}"
levels=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["levels"])' models/sic-lite/model.json)

printf '%-6s %10s %8s %9s\n' level bytes bpp "PSNR(dB)"
for l in $(seq 1 "$levels"); do
    gst-launch-1.0 -q filesrc location="$img" ! pngdec ! videoconvert ! video/x-raw,format=RGB \
        ! sicenc layers="$l" ! filesink location="$out/level$l.sic"
    gst-launch-1.0 -q filesrc location="$out/level$l.sic" ! sicparse ! sicdec sampling=mean \
        ! videoconvert ! pngenc ! filesink location="$out/level$l.png"
    target/release/examples/compare "$img" "$out/level$l.png" "$out/level$l.sic" "$l"
done
echo "decoded pictures and .sic files are in $out/"
