"""Runs every codec on every evaluation photo, measures each point, writes the CSV."""

import csv
import json
import math
import shutil
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

from . import codecs, images
from .report import source_state
from .metrics import Perceptual, all_metrics

FIELDS = ["image", "width", "height", "codec", "setting", "order", "bytes", "bpp",
          "psnr", "msssim", "lpips", "dists", "note"]

# settings per codec: (full, quick). Chosen to span about 0.05-2 bpp where the codec can, with
# no step of more than about 1.7x in rate (WebP q=80 and x265 qp=45 fill the widest gaps).
SETTINGS = {
    "jpeg": ((5, 10, 20, 35, 55, 75, 90), (10, 35, 75)),
    "webp": ((0, 5, 15, 30, 50, 70, 80, 90), (5, 30, 70)),
    "x264": ((47, 43, 39, 35, 31, 27, 23), (43, 35, 27)),
    "x265": ((47, 45, 43, 39, 35, 31, 27, 23), (43, 35, 27)),
    "jpeg2000": (codecs.J2K_RATES, codecs.J2K_RATES),
}
CLASSICAL = {"jpeg": codecs.jpeg, "webp": codecs.webp, "x264": codecs.x264,
             "x265": codecs.x265, "jpeg2000": codecs.jpeg2000}
LABELS = {"jpeg": "JPEG", "webp": "WebP", "x264": "H.264 intra (x264)",
          "x265": "HEVC intra (x265)", "jpeg2000": "JPEG 2000 (layered)"}
ELEMENTS = {"jpeg": ("jpegenc", "jpegdec"), "webp": ("webpenc", "webpdec"),
            "x264": ("x264enc", "h264parse", "avdec_h264"),
            "x265": ("x265enc", "h265parse", "avdec_h265"), "jpeg2000": ()}


def sic_levels(model_dir: Path) -> int:
    return int(json.loads((model_dir / "model.json").read_text())["levels"])


def sic_available(repo: Path):
    """(True, '') when sicenc/sicparse/sicdec load from target/release, else (False, why)."""
    env = codecs.sic_env(repo)
    lib = codecs.plugin_dir(repo) / "libgstsic.so"
    if not lib.exists():
        return False, f"{lib} does not exist (cargo build --release)"
    for e in ("sicenc", "sicparse", "sicdec"):
        p = subprocess.run(["gst-inspect-1.0", e], env=env, capture_output=True, text=True)
        if p.returncode != 0:
            return False, f"gst-inspect-1.0 {e} failed: {(p.stderr or p.stdout).strip()[-300:]}"
    return True, ""


def write_csv(rows, path: Path):
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k]) for k in FIELDS})
    tmp.replace(path)


def read_csv(path: Path):
    rows = []
    with open(path) as f:
        for r in csv.DictReader(f):
            for k in ("width", "height", "order", "bytes"):
                r[k] = int(r[k])
            for k in ("bpp", "psnr", "msssim", "lpips", "dists"):
                r[k] = float(r[k])
            rows.append(r)
    return rows


def evaluate(args, repo: Path, model_dir: Path, out: Path, log):
    quick = args.quick
    names = args.images or (images.QUICK if quick else images.ALL)
    img_dir = Path(args.work) / "eval-images"
    paths = images.prepare(img_dir, names)
    wanted = args.codecs or (list(CLASSICAL) + ["sic"])
    problems = []

    active = []
    for c in wanted:
        if c == "sic":
            ok, why = (False, "skipped (--no-sic)") if args.no_sic else sic_available(repo)
            if ok:
                active.append(c)
            else:
                problems.append(f"SIC not evaluated: {why}")
            continue
        missing = [e for e in ELEMENTS[c] if not codecs.have_element(e)]
        if c == "jpeg2000" and not shutil.which("opj_compress"):
            missing.append("opj_compress")
        if missing:
            problems.append(f"{c} not evaluated: missing {', '.join(missing)}")
        else:
            active.append(c)
    for p in problems:
        log(p)

    model = json.loads((model_dir / "model.json").read_text())
    levels = int(model["levels"])
    if args.sic_levels:
        sic_set = [int(v) for v in args.sic_levels.split(",")]
    elif quick:   # 1, L/4, L/2, L
        sic_set = sorted({1, max(1, levels // 4), max(1, levels // 2), levels})
    else:
        sic_set = list(range(1, levels + 1))

    perceptual = Perceptual()
    if perceptual.dists_error:
        problems.append(f"DISTS not available: {perceptual.dists_error}")
        log(problems[-1])

    rdo_lambda = args.sic_rdo_lambda   # what sicenc ran with: asked for, or its default
    if rdo_lambda is None and "sic" in active:
        rdo_lambda = codecs.property_default("sicenc", "rdo-lambda", codecs.sic_env(repo))
    source = source_state(repo)
    rows = []
    timings = {}
    csv_path = out / "points.csv"
    # --reuse: classical points of an earlier run with the same settings are kept (SIC never:
    # the model changes while it trains)
    previous, old_settings, reused = {}, {}, set()
    if args.reuse and csv_path.exists() and (out / "run.json").exists():
        old_settings = json.loads((out / "run.json").read_text()).get("settings", {})
        for r in read_csv(csv_path):
            previous.setdefault((r["image"], r["codec"]), []).append(r)
    settings_used = {c: list(SETTINGS[c][1 if quick else 0]) for c in CLASSICAL}
    for name in names:
        png = paths[name]
        orig = images.read_rgb(png)
        h, w = orig.shape[:2]
        wd = out / "work" / name
        wd.mkdir(parents=True, exist_ok=True)
        for c in active:
            t0 = time.time()
            old = previous.get((name, LABELS.get(c)), [])
            if (c in CLASSICAL and old and old_settings.get(c) == settings_used[c]
                    and len(old) == len(settings_used[c])):
                rows.extend(old)
                reused.add(c)
                log(f"{name:16s} {LABELS[c]:22s} reused {len(old)} points from the previous run")
                continue
            if c == "sic":
                gen = codecs.sic(name, orig, png, wd, sic_set, repo, model_dir, seed=args.seed,
                                 rdo_lambda=args.sic_rdo_lambda)
            else:
                gen = CLASSICAL[c](name, orig, png, wd, SETTINGS[c][1 if quick else 0])
            n = 0
            try:
                for order, pt in enumerate(gen):
                    m = all_metrics(orig, pt.recon, perceptual)
                    rows.append(dict(image=name, width=w, height=h, codec=pt.codec,
                                     setting=pt.setting, order=order, bytes=pt.nbytes,
                                     bpp=pt.nbytes * 8.0 / (w * h), note=pt.note, **m))
                    n += 1
                    log(f"{name:16s} {pt.codec:22s} {pt.setting:18s} {pt.nbytes:8d} B "
                        f"{rows[-1]['bpp']:.4f} bpp  PSNR {m['psnr']:.2f}  MS-SSIM {m['msssim']:.4f}"
                        f"  LPIPS {m['lpips']:.4f}  DISTS {m['dists']:.4f}")
            except Exception as e:
                msg = f"{c} on {name} failed after {n} points: {type(e).__name__}: {e}"
                problems.append(msg.splitlines()[0][:400])
                log(msg)
                if args.verbose:
                    traceback.print_exc()
            timings[c] = timings.get(c, 0.0) + time.time() - t0
            write_csv(rows, csv_path)
        # keep the bitstreams, drop decoded pictures and raw planes
        for f in wd.iterdir():
            if f.suffix in (".png", ".yuv"):
                f.unlink()
    write_csv(rows, csv_path)
    meta = {"images": {n: list(images.read_rgb(paths[n]).shape[:2]) for n in names},
            "problems": problems, "timings_s": timings, "quick": quick,
            "sic_levels": sic_set, "seed": args.seed, "sic_rdo_lambda": rdo_lambda,
            "sic_rdo_lambda_asked": args.sic_rdo_lambda is not None,
            "settings": settings_used,
            "codecs": active, "reused": sorted(reused), "source": source,
            "model": {k: model.get(k) for k in ("name", "model_id", "levels", "training")}}
    (out / "run.json").write_text(json.dumps(meta, indent=1))
    return rows, meta
