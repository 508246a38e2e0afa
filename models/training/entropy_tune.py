"""Fine-tuning of the entropy model alone, on latents computed once.

With g_a and g_s frozen, the latent y of every training photo is fixed, so the entropy model
(h_a, h_s, the slice networks and the density of z) can learn from y itself. One g_a pass per
photo fills a cache; after that a step runs only the hyper and slice networks, at 1/16 of the
image's resolution: a few steps per second on 2 CPU cores.

The loss is the coded size of every level, each divided by what the starting model spends on
it: each level's relative saving counts alike, as in a BD-rate (which compares log rates).

What this can change: the bits of every level, and, through the predicted means, the grid y
is rounded on and the values the decoder fills untransmitted slices with; g_s was trained with
the old means, so the pixels change too. `--part scales` leaves the means alone: every decoded
pixel stays bit-identical and only the sizes change. Measured on step 127041
(models/results/entropy-tune-127041.md): the whole entropy model saves 1-3 % of the bits and
gains PSNR, but LPIPS gets far worse; the scales alone save under 1 %."""

import hashlib
import json
import random
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from .config import ModelConfig
from .data import describe_photos, photo_files, train_dir, work_dir
from .entropy import gaussian_likelihood
from .model import SICLite, ste_round

ENTROPY_PREFIXES = ("h_a.", "h_s.", "slices.", "density_z.")


def add_tune_args(p):
    p.add_argument("--ckpt", type=Path, default=None,
                   help="checkpoint to tune in place (default <work>/ckpt/sic-lite.pt)")
    p.add_argument("--data", type=Path, default=None, help="folder of training PNGs")
    p.add_argument("--steps", type=int, default=400, help="stop at this many entropy steps")
    p.add_argument("--minutes", type=float, default=0, help="stop after this many minutes (0: no limit)")
    p.add_argument("--batch", type=int, default=8, help="latent windows per step")
    p.add_argument("--window", type=int, default=24,
                   help="window side in latent positions (a multiple of 4; 24: a 384-pixel crop)")
    p.add_argument("--margin", type=int, default=4,
                   help="latent positions at each window edge whose bits are left out of the "
                        "loss (a multiple of 4)")
    p.add_argument("--scales", default="0.6,0.45,0.35",
                   help="photo sizes whose latents are cached (1: the training photos as stored; "
                        "shrunk, they have the detail density of everyday photos)")
    p.add_argument("--part", default="all", choices=["all", "scales"],
                   help="all: the whole entropy model; scales: only the predicted scales and "
                        "the z density, so every reconstruction stays bit-identical")
    p.add_argument("--photos", default="original", choices=["original", "all"],
                   help="as for `train`: the 41 original photos, or every photo in the folder")
    p.add_argument("--lr", type=float, default=2e-5)
    p.add_argument("--rate", default="noise", choices=["noise", "ste"],
                   help="noise: the additive-uniform-noise proxy of joint training; ste: bits of "
                        "the rounded symbols, straight-through gradient (measured worse)")
    p.add_argument("--save-every", type=int, default=500)
    p.add_argument("--log-every", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)


def entropy_parameters(model, part="all"):
    """Freezes g_a and g_s; returns the entropy model's parameters that `part` trains.

    "scales" trains only what cannot move a reconstruction: the scale half of each slice
    network's last layer and the density of z (whose values stay as h_a makes them). The means,
    and so every decoded pixel, stay bit-identical; only the sizes change."""
    out = []
    for name, prm in model.named_parameters():
        on = name.startswith(ENTROPY_PREFIXES if part == "all" else ("density_z.",))
        prm.requires_grad_(on)
        if on:
            out.append(prm)
    if part == "scales":
        for s in model.slices:
            last = s.net[-1]
            half = last.out_channels // 2   # outputs: means, then raw scales
            for prm in (last.weight, last.bias):
                mask = torch.ones_like(prm)
                mask[:half] = 0
                prm.requires_grad_(True)
                prm.register_hook(lambda g, m=mask: g * m)
                out.append(prm)
    return out


def ga_fingerprint(model) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.g_a.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def cache_latents(model, files, scales, verbose=True):
    """y of every photo at every scale, float16 [M, h, w]. Each photo is cropped to a multiple
    of 64 pixels, so no padding enters the latents."""
    from PIL import Image
    lat, t0 = [], time.time()
    for p in files:
        im = Image.open(p).convert("RGB")
        for s in scales:
            size = (round(im.width * s), round(im.height * s))
            w, h = size[0] - size[0] % 64, size[1] - size[1] % 64
            if w < 256 or h < 256:
                continue
            a = im.resize(size, Image.LANCZOS) if s != 1 else im
            x = torch.from_numpy(np.asarray(a, dtype=np.float32)[:h, :w] / 255.0)
            with torch.no_grad():
                y = model.g_a(x.permute(2, 0, 1).unsqueeze(0).contiguous())
            lat.append(y[0].half())
    if verbose:
        n = sum(t.shape[1] * t.shape[2] for t in lat)
        print(f"cached the latents of {len(files)} photos at scales {list(scales)}: "
              f"{len(lat)} maps, {n} positions, {time.time() - t0:.0f} s", flush=True)
    return lat


class Windows:
    """Random square windows of the cached latents, photos drawn in proportion to their area."""

    def __init__(self, latents, size: int, seed: int):
        self.lat = [t for t in latents if min(t.shape[1:]) >= size]
        if not self.lat:
            raise SystemExit(f"--window {size}: larger than every cached latent map")
        area = np.array([t.shape[1] * t.shape[2] for t in self.lat], dtype=np.float64)
        self.weights = list(area / area.sum())
        self.size = size
        self.rng = random.Random(seed)

    def batch(self, n):
        out = []
        for _ in range(n):
            t = self.rng.choices(self.lat, self.weights)[0]
            i = self.rng.randrange(t.shape[1] - self.size + 1)
            j = self.rng.randrange(t.shape[2] - self.size + 1)
            out.append(t[:, i:i + self.size, j:j + self.size])
        return torch.stack(out).float()


def level_bits(model, y, rate="ste", margin=0):
    """Bits of each level (z plus slices < l) of every window: [levels, B]. With `margin`, only
    the positions at least that far (in y) from the window's edge count: the networks pad a
    window with zeros where a whole photo goes on, so near the edge they see what a photo's
    interior never shows them."""
    dims = (1, 2, 3)
    m, mz = margin, margin // 4

    def inner(t, e):
        return t[..., e:t.shape[-2] - e, e:t.shape[-1] - e] if e else t

    z = model.h_a(y)
    med = model.density_z.medians().view(1, -1, 1, 1)
    z_hat = ste_round(z - med) + med
    z_rate = z + torch.empty_like(z).uniform_(-0.5, 0.5) if rate == "noise" else z_hat
    bits = -inner(torch.log2(model.density_z.likelihood(z_rate)), mz).sum(dims)
    hyper = model.h_s(z_hat)
    parts, out = [], []
    for k in range(model.cfg.levels):
        mean, scale = model.slices[k](hyper, torch.cat(parts, 1) if parts else None)
        r = model.slice_of(y, k) - mean
        q = ste_round(r)
        r_rate = r + torch.empty_like(r).uniform_(-0.5, 0.5) if rate == "noise" else q
        bits = bits - inner(torch.log2(gaussian_likelihood(r_rate, scale)), m).sum(dims)
        out.append(bits)
        parts.append(q + mean)
    return torch.stack(out)


def tune(a):
    from .train import atomic_save, default_ckpt, stop_on_signals
    if a.window < 4 or a.window % 4:
        raise SystemExit(f"--window {a.window}: must be a positive multiple of 4")
    if a.margin < 0 or a.margin % 4 or 2 * a.margin >= a.window:
        raise SystemExit(f"--margin {a.margin}: a multiple of 4, less than half the window")
    scales = [float(s) for s in a.scales.split(",") if s.strip()]
    if not scales or any(not 0.1 <= s <= 1.0 for s in scales):
        raise SystemExit(f"--scales {a.scales!r}: each in [0.1, 1]")
    random.seed(a.seed)
    torch.manual_seed(a.seed)
    path = Path(a.ckpt or default_ckpt())
    if not path.exists():
        raise SystemExit(f"no checkpoint at {path}: `python -m training restore` rebuilds one "
                         "from the shipped bundle")
    ck = torch.load(path, map_location="cpu", weights_only=False)
    cfg = ModelConfig.from_dict(ck["config"])
    model = SICLite(cfg)
    model.load_state_dict(ck["model"])
    model.train()
    params = entropy_parameters(model, a.part)
    opt = torch.optim.Adam(params, lr=a.lr)
    history = list(ck.get("history") or [])
    last = history[-1] if history else {}
    done = int(ck.get("entropy_steps", 0))
    # Adam's moments belong to one parameter set: only a run of the same part reuses them
    if ("optimizer" in ck and last.get("train_part") == "entropy"
            and last.get("part", "all") == a.part):
        opt.load_state_dict(ck["optimizer"])
    for g in opt.param_groups:
        g["lr"] = a.lr

    files = photo_files(a.data or train_dir(), a.photos)
    names = [p.name for p in files]
    # one cache per analysis transform, photo set and sizes
    key = hashlib.sha256(json.dumps([ga_fingerprint(model), names, scales]).encode())
    cache = work_dir() / "latents" / f"{key.hexdigest()[:16]}.pt"
    if cache.exists():
        lat = torch.load(cache, weights_only=False)["latents"]
        print(f"latents from {cache}", flush=True)
    else:
        lat = cache_latents(model, files, scales)
        atomic_save({"latents": lat, "names": names, "scales": scales}, cache)
    win = Windows(lat, a.window, a.seed + done)

    # the reference sizes: the model as loaded (or as this tuning found it), on fixed windows
    monitor = Windows(lat, a.window, 12345).batch(32)
    ref = ck.get("entropy_reference")
    setup = {"latents": cache.stem, "window": a.window, "margin": a.margin}
    if ref is None or any(ref.get(k) != v for k, v in setup.items()):
        with torch.no_grad():
            ref = {**setup,
                   "bits": level_bits(model, monitor, margin=a.margin).mean(1).tolist()}
    ref_bits = torch.tensor(ref["bits"])

    history.append({"from_step": int(ck["step"]), "train_part": "entropy",
                    "from_entropy_step": done, "device": "cpu",
                    "threads": torch.get_num_threads(), "lr": a.lr, "batch": a.batch,
                    "part": a.part, "window": a.window, "margin": a.margin, "scales": scales,
                    "rate": a.rate, "data": describe_photos(names)})

    stop = stop_on_signals()
    wall = float(ck.get("wall_time_s", 0.0))
    step0, t0, t_prev = done, time.time(), time.time()

    def save():
        history[-1]["to_entropy_step"] = done
        training = dict(ck.get("training") or {})
        training.update({"entropy_steps": done, "wall_time_s": round(wall), "runs": history,
                         "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")})
        out = {k: v for k, v in ck.items() if k not in ("rng", "restored_from")}
        out.update({"model": model.state_dict(), "optimizer": opt.state_dict(),
                    "entropy_steps": done, "entropy_reference": ref, "wall_time_s": wall,
                    "history": history, "training": training})
        atomic_save(out, path)

    def relative_sizes():
        with torch.no_grad():
            return (level_bits(model, monitor, margin=a.margin).mean(1) / ref_bits).tolist()

    print("relative size per level at start: "
          + " ".join(f"{v:.4f}" for v in relative_sizes()), flush=True)
    acc = []
    while done < a.steps and not stop["flag"]:
        if a.minutes and time.time() - t0 > 60 * a.minutes:
            break
        y = win.batch(a.batch)
        loss = (level_bits(model, y, a.rate, a.margin).mean(1) / ref_bits).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        done += 1
        acc.append(loss.item())
        wall += time.time() - t_prev
        t_prev = time.time()
        if done % a.log_every == 0:
            rel = relative_sizes()
            print(f"entropy step {done} loss {np.mean(acc):.4f} | monitor "
                  + " ".join(f"{v:.4f}" for v in rel)
                  + f" | {(done - step0) / (time.time() - t0):.2f} steps/s", flush=True)
            acc = []
            t_prev = time.time()
        if done % a.save_every == 0:
            save()
            t_prev = time.time()
    save()
    print(f"saved {path} after {done} entropy steps", flush=True)
