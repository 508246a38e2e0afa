"""Rate and quality per level on a folder of images.

Bits per pixel are estimated from the model's likelihoods (z: factorized density, y: the
Gaussian of the predicted scale); the real byte counts come from the Rust codec, which codes
with the integer tables of model.json."""

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import torch

from .config import PAD_MULTIPLE
from .data import eval_dir, work_dir
from .entropy import z_tables
from .model import pad_to


def add_eval_args(p):
    p.add_argument("--ckpt", type=Path, default=None, help="checkpoint (default <work>/ckpt/sic-lite.pt)")
    p.add_argument("--images", type=Path, default=None, help="folder of PNG/JPEG images "
                   "(default <work>/data/eval, written by `python -m training data`)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default <work>/eval)")
    p.add_argument("--samples", type=int, default=1, help="uniform draws per image and level")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--modes", default="mean,uniform")
    p.add_argument("--rdo-lambda", type=float, default=0.0,
                   help="quantise y as sicenc rdo-lambda=X does (default 0: plain rounding)")


def load_image(p):
    from PIL import Image
    a = np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(a).permute(2, 0, 1).unsqueeze(0).contiguous()


def image_files(folder: Path) -> list:
    """The PNG/JPEG files of `folder`, sorted; the dev photos are fetched first if it is missing."""
    if not folder.exists():
        from .data import fetch_eval_photos
        fetch_eval_photos(folder)
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))


def quantise8(x):
    """Rule 6: clamp to [0,1], round(255 x)."""
    return torch.round(x.clamp(0, 1) * 255.0) / 255.0


def psnr(a, b):
    mse = float(torch.mean((a - b) ** 2))
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def evaluate_model(model, images, modes=("mean", "uniform"), samples=1, seed=0, lp=None,
                   verbose=True, rdo_lambda=0.0):
    """Returns rows {image, mode, level, bpp, psnr, msssim, lpips} and per-level means."""
    from pytorch_msssim import ms_ssim
    if lp is None:
        from .perceptual import LPIPSAlex
        lp = LPIPSAlex()
    model = model.eval()
    zt = z_tables(model.density_z)
    rows = []
    for p in images:
        x = load_image(p)
        _, _, h, w = x.shape
        xp = pad_to(x, PAD_MULTIPLE)
        for mode in modes:
            draws = 1 if mode == "mean" else samples
            for level in range(1, model.cfg.levels + 1):
                for d in range(draws):
                    g = torch.Generator().manual_seed(seed + 1000 * d + level)
                    x_hat, bpp_pad = model.code(xp, level, mode, g, zt, rdo_lambda)
                    x_hat = quantise8(x_hat[:, :, :h, :w])
                    bpp = bpp_pad * xp.shape[2] * xp.shape[3] / (h * w)
                    with torch.no_grad():
                        m = float(ms_ssim(x_hat, x, data_range=1.0))
                        l = float(lp(x_hat, x).mean())
                    rows.append({"image": Path(p).stem, "mode": mode, "level": level,
                                 "draw": d, "bpp": bpp, "psnr": psnr(x_hat, x),
                                 "msssim": m, "lpips": l})
        if verbose:
            print(f"  {Path(p).name}: {w}x{h} done", flush=True)
    means = {}
    for mode in modes:
        for level in range(1, model.cfg.levels + 1):
            r = [x for x in rows if x["mode"] == mode and x["level"] == level]
            means[(mode, level)] = {k: float(np.mean([x[k] for x in r]))
                                    for k in ("bpp", "psnr", "msssim", "lpips")}
    return rows, means


def acceptance(means, levels, mode="mean"):
    """Every level: bpp strictly up, PSNR and MS-SSIM strictly up, LPIPS strictly down."""
    bad = []
    for l in range(2, levels + 1):
        a, b = means[(mode, l - 1)], means[(mode, l)]
        if not b["bpp"] > a["bpp"]:
            bad.append(f"bpp L{l}")
        if not b["psnr"] > a["psnr"]:
            bad.append(f"psnr L{l}")
        if not b["msssim"] > a["msssim"]:
            bad.append(f"msssim L{l}")
        if not b["lpips"] < a["lpips"]:
            bad.append(f"lpips L{l}")
    return bad


def evaluate(a):
    # the options first: a wrong one fails before the model loads or photos download
    modes = tuple(a.modes.split(","))
    for m in modes:
        if m not in ("mean", "uniform") and not re.fullmatch(r"gauss[0-9]*\.?[0-9]+", m):
            raise SystemExit(f"--modes: unknown fill {m!r} (mean, uniform or gaussT, e.g. gauss0.25)")
    if not 0.0 <= a.rdo_lambda <= 1.0:
        raise SystemExit(f"--rdo-lambda {a.rdo_lambda}: out of range 0..1 (sicenc's range)")
    from .train import load_model_for_export
    model, training = load_model_for_export(a.ckpt, False)
    folder = Path(a.images or eval_dir())
    images = image_files(folder)
    print(f"evaluating step {training['steps']} on {len(images)} images in {folder}", flush=True)
    rows, means = evaluate_model(model, images, modes, a.samples, a.seed, rdo_lambda=a.rdo_lambda)
    out = Path(a.out or (work_dir() / "eval"))
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "per_image.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        wr.writeheader()
        wr.writerows(rows)
    L = model.cfg.levels
    lines = [f"SIC-lite, checkpoint step {training['steps']}, {len(images)} images from {folder.name} "
             f"(dev photos: skimage/sklearn/matplotlib); bpp estimated from likelihoods "
             f"(real bytes come from the Rust codec); y quantised "
             + (f"with rdo-lambda {a.rdo_lambda}" if a.rdo_lambda > 0 else "by rounding"), "",
             "| mode | level | bpp | PSNR dB | MS-SSIM | LPIPS-Alex |", "| --- | --- | --- | --- | --- | --- |"]
    with open(out / "per_level.csv", "w", newline="") as f:
        wr = csv.writer(f)
        wr.writerow(["mode", "level", "bpp", "psnr", "msssim", "lpips"])
        for mode in modes:
            for l in range(1, L + 1):
                m = means[(mode, l)]
                wr.writerow([mode, l, f"{m['bpp']:.4f}", f"{m['psnr']:.3f}", f"{m['msssim']:.4f}",
                             f"{m['lpips']:.4f}"])
                lines.append(f"| {mode} | {l} | {m['bpp']:.4f} | {m['psnr']:.2f} | "
                             f"{m['msssim']:.4f} | {m['lpips']:.4f} |")
    for mode in modes:
        bad = acceptance(means, L, mode)
        lines.append("")
        lines.append(f"acceptance ({mode}): " + ("PASS: bpp, PSNR, MS-SSIM strictly increasing and "
                     "LPIPS strictly decreasing with every level" if not bad else
                     "FAIL: " + ", ".join(bad)))
    text = "\n".join(lines) + "\n"
    (out / "results.md").write_text(text)
    print(text)
    plot(means, modes, L, out / "rd.png", training["steps"])
    print(f"wrote {out}/results.md, per_level.csv, per_image.csv, rd.png")


def plot(means, modes, L, path, steps):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(1, 3, figsize=(13, 3.8))
    for mode, style in zip(modes, ("o-", "s--")):
        bpp = [means[(mode, l)]["bpp"] for l in range(1, L + 1)]
        for i, k in enumerate(("psnr", "msssim", "lpips")):
            ax[i].plot(bpp, [means[(mode, l)][k] for l in range(1, L + 1)], style, label=mode)
    for i, k in enumerate(("PSNR (dB)", "MS-SSIM", "LPIPS-Alex (lower is better)")):
        ax[i].set_xlabel("bpp (estimated)")
        ax[i].set_ylabel(k)
        ax[i].grid(alpha=0.3)
        ax[i].legend()
    fig.suptitle(f"SIC-lite levels 1..{L}, step {steps}, dev photos")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
