"""Encoder-side latent refinement: an experiment, not part of the codec.

A decoder reads only the symbols, so an encoder may send any latent, not just g_a(x). Here the
latent y of one picture is optimised for the model's own objective, summed over the levels the
single layered stream serves (each level's distortion and perception weighted as in training,
plus the bits of the slices it reads); z, and so the hyper parameters, stay those of g_a(x).

Rounding has no useful gradient, so the optimisation sees a stochastic soft rounding after
Yang et al., "Improving Inference for Neural Image Compression" (NeurIPS 2020): each residual
becomes a Gumbel-softmax mix of its floor and ceiling, the nearer one likelier, with a
temperature annealed towards hard rounding. The refined y is then coded exactly as `sicenc`
would (rule 4 of docs/model.md, rdo-lambda included). Measured on step 129322:
models/results/encoder-refine-129322.md."""

import csv
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .config import PAD_MULTIPLE
from .entropy import gaussian_likelihood, z_tables
from .evaluate import image_files, load_image, psnr, quantise8
from .model import pad_to


def add_refine_args(p):
    p.add_argument("--ckpt", type=Path, default=None,
                   help="checkpoint (default <work>/ckpt/sic-lite.pt)")
    p.add_argument("--images", type=Path, default=None, help="folder of PNG/JPEG images "
                   "(default <work>/data/eval)")
    p.add_argument("--only", default=None, help="comma list of image stems to use")
    p.add_argument("--iters", type=int, default=100, help="optimiser steps per picture (0: g_a's y)")
    p.add_argument("--lr", type=float, default=0.02, help="Adam's step on y")
    p.add_argument("--levels-per-iter", type=int, default=2,
                   help="levels drawn at random for each step's objective")
    p.add_argument("--objective", default="train", choices=["train", "mse"],
                   help="train: distortion + LPIPS-Alex + rate as in training; mse: no LPIPS")
    p.add_argument("--p-scale", type=float, default=1.0, help="multiplies the LPIPS weights")
    p.add_argument("--rdo-lambda", type=float, default=0.02,
                   help="the final quantiser's (sicenc's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, required=True, help="CSV of every image and level")


def sga_round(r, tau: float, generator=None):
    """A soft, stochastic rounding of r: floor(r) + w with w in (0, 1), drawn from a
    Gumbel-softmax whose logits favour the nearer integer; tau -> 0 approaches hard rounding."""
    lo = torch.floor(r)
    f = (r - lo).clamp(1e-4, 1.0 - 1e-4)
    logits = torch.stack([-torch.atanh(f), -torch.atanh(1.0 - f)], -1) / tau
    u = torch.rand(logits.shape, generator=generator, device="cpu").to(r).clamp(1e-9, 1.0 - 1e-9)
    g = -torch.log(-torch.log(u))
    w = torch.softmax((logits + g) / tau, -1)
    return lo + w[..., 1]


def level_objective(model, y, hyper, x, levels, weights, tau, generator, lp=None):
    """Mean over `levels` of d·MSE + p·LPIPS + r·bits of the level, y soft-rounded."""
    h, w = x.shape[2], x.shape[3]
    npix = 256 * y.shape[2] * y.shape[3]
    parts, rates = [], []
    for k in range(max(levels)):
        mean, scale = model.slices[k](hyper, torch.cat(parts, 1) if parts else None)
        q = sga_round(model.slice_of(y, k) - mean, tau, generator)
        rates.append(-torch.log2(gaussian_likelihood(q, scale)).sum() / npix)
        parts.append(q + mean)
    total = 0.0
    for l in levels:
        d, p, r = weights(l)
        y_l = model.fill_untransmitted(hyper, torch.cat(parts[:l], 1), l, "mean")
        x_l = model.synthesize_filled(y_l, l, "mean")[:, :, :h, :w]
        term = d * F.mse_loss(x_l, x) + r * torch.stack(rates[:l]).sum()
        if lp is not None:
            term = term + p * lp(x_l, x).mean()
        total = total + term
    return total / len(levels)


def refine_latent(model, y0, hyper, x, iters, weights, lr=0.02, levels_per_iter=2, lp=None,
                  seed=0, tau0=0.5):
    """Adam on a copy of y0 for `iters` steps; the temperature falls from tau0 by e^-4."""
    if iters <= 0:
        return y0.clone()
    L = model.cfg.levels
    g = torch.Generator().manual_seed(seed)
    y = y0.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([y], lr=lr)
    for it in range(iters):
        tau = tau0 * math.exp(-4.0 * it / iters)
        levels = sorted((torch.randperm(L, generator=g)[:levels_per_iter] + 1).tolist())
        loss = level_objective(model, y, hyper, x, levels, weights, tau, g, lp)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return y.detach()


def run(a):
    from .data import eval_dir
    from .perceptual import LPIPSAlex
    from .train import lambdas, load_model_for_export
    model, training = load_model_for_export(a.ckpt, False)
    model.eval()
    from .dists import DISTS
    lp, ds = LPIPSAlex(), DISTS()
    for m in (model, lp, ds):
        m.requires_grad_(False)
    # the weights of the checkpoint's last training run (the shipped bundle: d x 2)
    rec = training.get("lambda", {})
    sd, sp, sr = (float(rec.get(k, 1.0)) for k in ("scale_d", "scale_p", "scale_r"))
    L = model.cfg.levels

    def weights(level):
        d, p, r = lambdas(level, L)
        return d * sd, p * sp * a.p_scale, r * sr
    print(f"objective {a.objective}: lambda scales d {sd}, p {sp * a.p_scale}, r {sr}", flush=True)

    folder = Path(a.images or eval_dir())
    images = image_files(folder)
    if a.only:
        images = [p for p in images if p.stem in a.only.split(",")]
    if not images:
        raise SystemExit(f"no images in {folder}" + (f" named {a.only}" if a.only else ""))
    zt = z_tables(model.density_z)
    rows, t0 = [], time.time()
    for p in images:
        x = load_image(p)
        _, _, h, w = x.shape
        xp = pad_to(x, PAD_MULTIPLE)
        with torch.no_grad():
            y0, z = model.analysis(xp)
            z_hat = model.quantise_z(z, zt)
            hyper = model.hyper(z_hat, y0)
        t = time.time()
        y = refine_latent(model, y0, hyper, x, a.iters, weights, a.lr, a.levels_per_iter,
                          lp if a.objective == "train" else None, a.seed)
        spent = time.time() - t
        for level in range(1, L + 1):
            x_hat, bpp_pad = model.code_latent(y, z_hat, hyper, level, "mean", None, a.rdo_lambda)
            x_hat = quantise8(x_hat[:, :, :h, :w])
            with torch.no_grad():
                rows.append({"image": p.stem, "level": level,
                             "bpp": bpp_pad * xp.shape[2] * xp.shape[3] / (h * w),
                             "psnr": psnr(x_hat, x), "lpips": float(lp(x_hat, x).mean()),
                             "dists": float(ds(x_hat, x).mean()), "refine_s": spent})
        print(f"  {p.name}: {w}x{h}, {a.iters} steps in {spent:.0f} s "
              f"({time.time() - t0:.0f} s so far)", flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        wr.writeheader()
        wr.writerows(rows)
    print("level  bpp     PSNR    LPIPS   DISTS")
    for level in range(1, L + 1):
        r = [x for x in rows if x["level"] == level]
        m = [float(np.mean([x[k] for x in r])) for k in ("bpp", "psnr", "lpips", "dists")]
        print(f"{level:5d}  {m[0]:.4f}  {m[1]:.3f}  {m[2]:.4f}  {m[3]:.4f}")


QUALITY = ("psnr", "lpips", "dists")
LOWER_IS_BETTER = {"psnr": False, "lpips": True, "dists": True}
PHOTO_SOURCES = ("skimage", "sklearn", "matplotlib")


def rd_eval_name(stem: str) -> str:
    """skimage_chelsea -> chelsea, the name scripts/rd-eval.sh gives the photo."""
    source, _, rest = stem.partition("_")
    return rest if source in PHOTO_SOURCES and rest else stem


def read_rows(path: Path) -> dict:
    """{(image, level): {bpp, psnr, lpips, dists}} of a CSV written by `run`."""
    with open(path, newline="") as f:
        return {(rd_eval_name(r["image"]), int(r["level"])):
                {k: float(r[k]) for k in ("bpp",) + QUALITY} for r in csv.DictReader(f)}


def read_points(path: Path) -> dict:
    """{codec: {(image, setting): {bpp, psnr, lpips, dists}}} of scripts/rd-eval.sh's points.csv;
    SIC's settings are its levels (ints)."""
    out = {}
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            setting = int(r["setting"].split("=")[1]) if r["codec"].startswith("SIC") else r["setting"]
            out.setdefault(r["codec"], {})[(r["image"], setting)] = {
                k: float(r[k]) for k in ("bpp",) + QUALITY}
    return out


def mean_curve(rows: dict, images) -> list:
    """Averaged over `images` at each setting that all of them have (as docs/results.md)."""
    out = []
    for setting in {s for _, s in rows}:
        rs = [rows.get((i, setting)) for i in images]
        if all(rs):
            out.append({k: float(np.mean([r[k] for r in rs])) for k in ("bpp",) + QUALITY})
    return sorted(out, key=lambda p: p["bpp"])


def bd_rates(anchor: list, test: list) -> dict:
    from evaluation.bd import bd_rate   # models/evaluation, beside this package
    return {m: bd_rate([p["bpp"] for p in anchor], [p[m] for p in anchor],
                       [p["bpp"] for p in test], [p[m] for p in test], LOWER_IS_BETTER[m])
            for m in QUALITY}


def compare(base: dict, test: dict, points: dict = None) -> dict:
    """Curves of `base` and `test` (from `run`, likelihood bits) over their common images, the
    BD-rates of test against base and, given an rd-eval run's points, estimated BD-rates against
    its classical codecs: each real-byte SIC (mean) point scaled by the test / base bits of its
    image and level, with the test's quality."""
    keys = set(base) & set(test)
    images = sorted({i for i, _ in keys})
    out = {"images": images, "base": mean_curve(base, images), "test": mean_curve(test, images)}
    out["bd"] = bd_rates(out["base"], out["test"])
    if points is None:
        return out
    real = points["SIC (mean)"]

    def estimated(rows):
        return {k: {"bpp": real[k]["bpp"] * rows[k]["bpp"] / base[k]["bpp"],
                    **{m: rows[k][m] for m in QUALITY}} for k in keys if k in real}
    own = {"real bytes": mean_curve(real, images), "base est.": mean_curve(estimated(base), images),
           "test est.": mean_curve(estimated(test), images)}
    out["anchors"] = {codec: {name: bd_rates(mean_curve(rows, images), c) for name, c in own.items()}
                      for codec, rows in sorted(points.items()) if not codec.startswith("SIC")}
    return out


def report(a):
    r = compare(read_rows(a.base), read_rows(a.test), read_points(a.points) if a.points else None)

    def pct(x, y):
        return f"{100 * (y / x - 1):+.1f} %"
    print(f"{len(r['images'])} images; per level, base -> test: bpp, PSNR, LPIPS, DISTS")
    for lv, (b, t) in enumerate(zip(r["base"], r["test"]), 1):
        print(f"  {lv}: {b['bpp']:.4f} -> {t['bpp']:.4f} ({pct(b['bpp'], t['bpp'])}), "
              f"{b['psnr']:.2f} -> {t['psnr']:.2f} dB, "
              f"{b['lpips']:.4f} -> {t['lpips']:.4f} ({pct(b['lpips'], t['lpips'])}), "
              f"{b['dists']:.4f} -> {t['dists']:.4f} ({pct(b['dists'], t['dists'])})")
    print("BD-rate of test against base: " + ", ".join(f"{m} {v:+.2f} %" for m, v in r["bd"].items()))
    if "anchors" in r:
        print("BD-rate of SIC against the classical codecs, PSNR / LPIPS / DISTS (%): real bytes "
              "of the rd-eval run; base and test estimated from it")
        for codec, row in r["anchors"].items():
            print(f"  {codec}: " + "; ".join(
                f"{name} " + " / ".join(f"{v:+.1f}" for v in bd.values()) for name, bd in row.items()))
