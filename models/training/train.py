"""Training with the paper's triple-tradeoff loss, rescaled to L levels; resumable."""

import dataclasses
import json
import os
import random
import signal
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .config import DEFAULT_BUNDLE, ModelConfig
from .data import (DATA_DESCRIPTION, CropDataset, crops_to_float, describe_photos, train_dir,
                   work_dir)
from .model import SICLite, count_parameters

PAPER_LEVELS = 16


def default_ckpt() -> Path:
    return work_dir() / "ckpt" / "sic-lite.pt"


def add_train_args(p):
    p.add_argument("--ckpt", type=Path, default=None, help="checkpoint (default <work>/ckpt/sic-lite.pt)")
    p.add_argument("--data", type=Path, default=None, help="folder of training PNGs")
    p.add_argument("--steps", type=int, default=1_000_000, help="stop at this total step")
    p.add_argument("--minutes", type=float, default=0, help="stop after this many minutes (0: no limit)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--crop", type=int, default=128)
    p.add_argument("--rescale", type=float, default=1.0,
                   help="cut each crop up to crop/RESCALE wide and shrink it to --crop "
                        "(scale log-uniform in [RESCALE, 1]; 1: no rescaling)")
    p.add_argument("--photos", default="original", choices=["original", "all"],
                   help="original: leave out the photos of `python -m training data --extra` "
                        "(the 41 of every shipped model up to step 127041); all: every photo in the folder")
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--lr-warm", type=float, default=5e-4, help="learning rate of the first --warm-steps")
    p.add_argument("--warm-steps", type=int, default=4000)
    p.add_argument("--lambda-c", type=float, default=0.1, help="weight of the consistency term")
    p.add_argument("--lambda-d-scale", type=float, default=2.0,
                   help="multiplies every lambda_d(l) (2: the shipped bundle)")
    p.add_argument("--lambda-p-scale", type=float, default=1.0, help="multiplies every lambda_p(l)")
    p.add_argument("--lambda-r-scale", type=float, default=1.0, help="multiplies every lambda_r(l)")
    p.add_argument("--no-lpips", action="store_true", help="drop the LPIPS term (faster)")
    p.add_argument("--dists-weight", type=float, default=0.0,
                   help="the perceptual term becomes LPIPS + W * DISTS (training.dists, VGG16: "
                        "about 3 s per picture of a batch of 8 at 192x192 on 2 CPU cores; 0: off)")
    p.add_argument("--save-every", type=int, default=200)
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--fill-uniform", type=float, default=0.0,
                   help="probability that a step's level term fills the untransmitted slices by "
                        "uniform sampling instead of their means (0: always the means)")
    p.add_argument("--lr-drops", default="",
                   help="time-based learning rates for this run: 'MIN:LR,...' uses LR from MIN "
                        "minutes after the run started (for fixed-length GPU runs)")
    p.add_argument("--train-part", default="all", choices=["all", "synthesis", "modulation"],
                   help="synthesis: train g_s (and its level modulation) alone (the bitstream, "
                        "hence every rate, stays exactly as it is; a decoder-side fine-tune, "
                        "e.g. for perception); modulation: only the level modulation (its "
                        "tables and adapter)")
    p.add_argument("--level-modulation", action="store_true",
                   help="give a checkpoint without one a level modulation of g_s "
                        "(model.LevelModulation), zero-initialised, so g_s starts unchanged")
    p.add_argument("--level-adapter", type=int, default=0, metavar="H",
                   help="give the level modulation a LevelAdapter of H hidden channels after "
                        "each stage (zero-initialised, so the model starts unchanged; implies "
                        "--level-modulation); trained with the modulation's group")
    p.add_argument("--modulation-lr-scale", type=float, default=20.0,
                   help="the level modulation's learning rate is this times --lr: its tables "
                        "are few numbers starting at zero")
    p.add_argument("--N", type=int, default=None, help="g_a/g_s width of a new model")
    p.add_argument("--slice-widths", default=None,
                   help="comma-separated slice widths of a new model (sum = M)")
    p.add_argument("--bf16", action="store_true",
                   help="run g_a and g_s (but their last layers) under bfloat16 autocast: about "
                        "1.8x the steps on CPUs with AMX (models/results/cpu-bf16.md)")
    p.add_argument("--from-scratch", action="store_true",
                   help="with no checkpoint, start from a random init instead of the weights "
                        "of the shipped bundle (models/sic-lite, restored by `restore.py`)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)


def lambdas(level: int, levels: int, a=None):
    """Paper's weights for 16 levels, with l16 = (16 / L) * l."""
    l16 = level * PAPER_LEVELS / levels
    d = 128.0 * l16
    p = 2.0 ** (5.0 - l16 / 8.0)
    r = 2.0 ** (6.0 - 3.0 * l16 / 8.0)
    if a is not None:
        d, p, r = d * a.lambda_d_scale, p * a.lambda_p_scale, r * a.lambda_r_scale
    return d, p, r


def lambda_record(levels, a):
    return {"schedule": "paper, l16 = 2*l: d=128*l16, p=2^(5-l16/8), r=2^(6-3*l16/8)",
            "scale_d": a.lambda_d_scale, "scale_p": a.lambda_p_scale,
            "scale_r": a.lambda_r_scale, "consistency": a.lambda_c,
            "lpips": not a.no_lpips, "dists_weight": a.dists_weight,
            "per_level": {str(l): [round(v, 4) for v in lambdas(l, levels, a)]
                          for l in range(1, levels + 1)}}


def atomic_save(obj, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def level_for_step(step: int, levels: int) -> int:
    """Cycle from the top down: L, L-1, ..., 1, L, ..."""
    return levels - (step % levels)


def parse_lr_drops(text):
    """'6:1e-4,7.5:2e-5' -> [(6.0, 1e-4), (7.5, 2e-5)] sorted by time."""
    out = []
    for part in filter(None, (t.strip() for t in text.split(","))):
        m, lr = part.split(":")
        out.append((float(m), float(lr)))
    return sorted(out)


def trainable(model, part: str, modulation_lr_scale: float = 1.0):
    """The parameter groups a run updates (the level modulation's tables in a group of their
    own, `lr_scale` times the learning rate); the others are frozen (no gradient is even
    computed)."""
    prefixes = {"all": ("",), "synthesis": ("g_s.", "level_modulation."),
                "modulation": ("level_modulation.",)}[part]
    main, mod = [], []
    for name, prm in model.named_parameters():
        prm.requires_grad_(name.startswith(prefixes))
        if prm.requires_grad:
            (mod if name.startswith("level_modulation.") else main).append(prm)
    groups = [{"params": main, "lr_scale": 1.0}] if main else []
    if mod:
        groups.append({"params": mod, "lr_scale": modulation_lr_scale})
    if not groups:
        raise SystemExit(f"--train-part {part}: the model has no such parameters "
                         "(--level-modulation adds a level modulation)")
    return groups


def with_level_parts(cfg: ModelConfig, a) -> ModelConfig:
    """`cfg` with the level modulation and adapter the flags ask for (an adapter needs the
    modulation); parts the checkpoint has stay."""
    return dataclasses.replace(
        cfg, level_modulation=cfg.level_modulation or a.level_modulation or bool(a.level_adapter),
        level_adapter=cfg.level_adapter or a.level_adapter)


def new_config(a) -> ModelConfig:
    kw = {}
    if a.N:
        kw["N"] = a.N
    if a.slice_widths:
        kw["slice_widths"] = tuple(int(w) for w in a.slice_widths.split(","))
        kw["M"] = sum(kw["slice_widths"])
    return ModelConfig(**kw)


def loss_terms(model, lp, x, level, a, ds=None):
    L = model.cfg.levels
    # Mean filling keeps g_s free to use every slice; uniform sampling (the paper's synonymous
    # fill) teaches it to tolerate the decoder's sampling mode but penalises late slices.
    fill = "uniform" if a.fill_uniform > 0 and random.random() < a.fill_uniform else "mean"
    # the level modulation leaves the full level alone: a run of it alone skips that picture
    full = a.train_part != "modulation"
    out = model(x, level, fill, full=full)
    zero = torch.zeros((), device=x.device)
    mse_full = F.mse_loss(out["x_full"], x) if full else zero
    mse_lvl = F.mse_loss(out["x_level"], x)
    if lp is not None:
        lp_full = lp(out["x_full"], x).mean() if full else zero
        lp_lvl = lp(out["x_level"], x).mean() if level < L else lp_full
    else:
        lp_full = lp_lvl = zero
    if ds is not None:
        # the original's VGG features once for both pictures
        with torch.no_grad():
            fx = ds.features(x)
        ds_full = ds.distance(x, out["x_full"], fx).mean() if full else zero
        ds_lvl = ds.distance(x, out["x_level"], fx).mean() if level < L else ds_full
    else:
        ds_full = ds_lvl = zero
    # the perceptual distance the paper's lambda_p weighs
    per_full = lp_full + a.dists_weight * ds_full
    per_lvl = lp_lvl + a.dists_weight * ds_lvl
    ry, rz = out["rate_y"], out["rate_z"]
    dL, pL, rL = lambdas(L, L, a)
    dl, pl, rl = lambdas(level, L, a)
    o = model.cfg.offsets()[level] if level < L else model.cfg.M
    rate_full = ry.sum() + rz
    rate_lvl = ry[:level].sum() + rz
    # consistency: re-encoding the level-l reconstruction gives back the transmitted latent
    # (skipped at weight 0: it costs a pass of g_a each way)
    if a.lambda_c > 0:
        y_re = model.g_a(out["x_level"])
        cons = F.mse_loss(y_re[:, :o], out["y_hat"][:, :o].detach())
    else:
        cons = torch.zeros((), device=x.device)
    loss = (0.5 * (dL * mse_full + pL * per_full + rL * rate_full)
            + 0.5 * (dl * mse_lvl + pl * per_lvl + rl * rate_lvl)
            + a.lambda_c * cons)
    # detached tensors, not floats: .item() here would wait for the GPU at every step
    parts = {"loss": loss, "mse_full": mse_full, "mse_l": mse_lvl, "lpips_full": lp_full,
             "lpips_l": lp_lvl, "dists_full": ds_full, "dists_l": ds_lvl, "bpp_full": rate_full,
             "bpp_l": rate_lvl, "bpp_z": rz, "cons": cons}
    return loss, {k: v.detach() for k, v in parts.items()}


def train(a):
    torch.manual_seed(a.seed)
    device = torch.device(a.device)
    ckpt_path = Path(a.ckpt or default_ckpt())
    data = CropDataset(a.data or train_dir(), crop=a.crop, seed=a.seed, rescale=a.rescale,
                       photos=a.photos)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True   # fixed crop size: pick the fastest kernels once
    step, wall, history, resumed_note = 0, 0.0, [], None
    if not ckpt_path.exists() and not (a.from_scratch or a.N or a.slice_widths):
        # a fresh machine: go on from the committed model rather than from noise
        from .restore import BundleError, checkpoint_from_bundle
        try:
            atomic_save(checkpoint_from_bundle(DEFAULT_BUNDLE), ckpt_path)
        except BundleError as e:
            raise SystemExit(f"no checkpoint at {ckpt_path}, and the shipped bundle could not "
                             f"be restored into one ({e}); --from-scratch trains a new model")
    if ckpt_path.exists():
        ck = torch.load(ckpt_path, map_location=device, weights_only=False)
        cfg = ModelConfig.from_dict(ck["config"])
        if a.level_adapter and cfg.level_adapter not in (0, a.level_adapter):
            raise SystemExit(f"{ckpt_path} has a level adapter of width {cfg.level_adapter}")
        grown = with_level_parts(cfg, a)
        added = grown != cfg
        cfg = grown
        model = SICLite(cfg).to(device)
        missing, unexpected = model.load_state_dict(ck["model"], strict=not added)
        if unexpected or any(not k.startswith("level_modulation.") for k in missing):
            raise SystemExit(f"{ckpt_path} does not fit the model: {missing + unexpected}")
        groups = trainable(model, a.train_part, a.modulation_lr_scale)
        opt = torch.optim.Adam(groups, lr=a.lr_warm)
        last_part = (ck.get("history") or [{}])[-1].get("train_part", "all")
        if added:
            print("level modulation or adapter added (zero): Adam starts afresh", flush=True)
            resumed_note = ("level modulation added, zero-initialised: Adam restarted"
                            if not cfg.level_adapter else
                            f"level adapter ({cfg.level_adapter} channels) added, "
                            "zero-initialised: Adam restarted")
        elif "optimizer" in ck and last_part == a.train_part:
            opt.load_state_dict(ck["optimizer"])
        elif "optimizer" in ck:   # moments of other parameters: not reusable
            print(f"checkpoint optimizer trained '{last_part}': Adam starts afresh", flush=True)
            resumed_note = f"switched from training '{last_part}': Adam restarted"
        elif "restored_from" in ck:
            r = ck["restored_from"]
            print("checkpoint restored from a bundle: Adam starts afresh", flush=True)
            resumed_note = (f"restored from bundle {r['model_id']} (weights exact, z density "
                            f"fitted to its tables, KL <= {r['z_fit_kl_bits_max']:.1e} bits): "
                            "Adam restarted")
        elif "averaged" in (ck.get("history") or [{}])[-1]:
            print("checkpoint averaged from others: Adam starts afresh", flush=True)
            resumed_note = "weights averaged (python -m training average): Adam restarted"
        else:   # float16 weights packed for a GPU run or brought back from one, no moments
            print("checkpoint has no optimizer state: Adam starts afresh", flush=True)
            resumed_note = ("weights only (as packed for or brought back from a GPU run): "
                            "Adam restarted")
        step, wall = ck["step"], ck["wall_time_s"]
        history = ck.get("history")
        if history is None:   # checkpoints written before the run history was recorded
            ar = ck.get("args", {})
            history = [{"from_step": 0, "device": ck.get("device", "cpu"),
                        "warm_steps": int(ar.get("warm_steps", 0)),
                        "lr": float(ar.get("lr_warm", 0)),
                        "lambda_scale_d": float(ar.get("lambda_d_scale", 1)),
                        "lambda_scale_p": float(ar.get("lambda_p_scale", 1)),
                        "lambda_scale_r": float(ar.get("lambda_r_scale", 1)),
                        "lambda_c": float(ar.get("lambda_c", 0.1)),
                        "lpips": ar.get("no_lpips") != "True"}]
        if "rng" in ck:
            # map_location moved the saved states onto the training device; they load from the CPU
            torch.set_rng_state(ck["rng"]["torch"].cpu())
            np.random.set_state(ck["rng"]["numpy"])
            random.setstate(ck["rng"]["python"])
            data.set_state(ck["rng"]["data"])
            if device.type == "cuda" and ck["rng"].get("cuda") is not None:
                torch.cuda.set_rng_state(ck["rng"]["cuda"].cpu())
        print(f"resumed from {ckpt_path} at step {step} ({wall:.0f} s trained)", flush=True)
    else:
        cfg = new_config(a)
        cfg = with_level_parts(cfg, a)
        model = SICLite(cfg).to(device)
        groups = trainable(model, a.train_part, a.modulation_lr_scale)
        opt = torch.optim.Adam(groups, lr=a.lr_warm)
        print(f"new model: {count_parameters(model) / 1e6:.2f} M parameters, "
              f"checkpoint {ckpt_path}", flush=True)
    lp = None if a.no_lpips else LPIPS(device)
    ds = DISTS(device) if a.dists_weight > 0 else None
    # one entry per run: what the steps from here on were trained with
    dev_name = str(device)
    if device.type == "cuda":
        dev_name += f" ({torch.cuda.get_device_name(device)})"
    history.append({"from_step": step, "device": dev_name, "threads": torch.get_num_threads(),
                    "lr": a.lr_warm if step < a.warm_steps else a.lr, "warm_steps": a.warm_steps,
                    "lambda_scale_d": a.lambda_d_scale, "lambda_scale_p": a.lambda_p_scale,
                    "lambda_scale_r": a.lambda_r_scale, "lambda_c": a.lambda_c,
                    "lpips": not a.no_lpips, "dists_weight": a.dists_weight,
                    "fill_uniform": a.fill_uniform,
                    "batch": a.batch, "crop": a.crop, "rescale": a.rescale,
                    "lr_drops": a.lr_drops, "data": describe_photos(data.names),
                    "train_part": a.train_part, "bf16": a.bf16,
                    "level_modulation": cfg.level_modulation,
                    "level_adapter": cfg.level_adapter,
                    "modulation_lr_scale": a.modulation_lr_scale})
    if resumed_note:
        history[-1]["resumed"] = resumed_note
    drops = parse_lr_drops(a.lr_drops)

    stop = stop_on_signals()

    def save():
        rng = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
               "python": random.getstate(), "data": data.state(),
               "cuda": torch.cuda.get_rng_state() if device.type == "cuda" else None}
        atomic_save({"config": cfg.to_dict(), "model": model.state_dict(),
                     "optimizer": opt.state_dict(), "step": step, "wall_time_s": wall,
                     "rng": rng, "device": str(device), "history": history,
                     "args": {k: str(v) for k, v in vars(a).items()},
                     "training": training_record(step, wall, device, a, cfg, history)},
                    ckpt_path)

    # the level modulation has no row for the full level: a run of it alone skips that level
    cycle = cfg.levels - 1 if a.train_part == "modulation" else cfg.levels
    params = [p for g in groups for p in g["params"]]
    t_start = time.time()
    t_log, s_log = time.time(), step
    t_prev = time.time()
    acc = {}
    model.train()
    model.g_a.inner_bf16 = model.g_s.inner_bf16 = a.bf16
    while step < a.steps and not stop["flag"]:
        if a.minutes and time.time() - t_start > 60 * a.minutes:
            break
        lr = a.lr_warm if step < a.warm_steps else a.lr
        minutes = (time.time() - t_start) / 60
        for at, v in drops:
            if minutes >= at:
                lr = v
        for g in opt.param_groups:
            g["lr"] = lr * g["lr_scale"]
        level = level_for_step(step, cycle)
        t_data = time.perf_counter()
        x = on_device(data.batch_u8(a.batch), device)
        acc.setdefault("data_ms", []).append(torch.tensor(1e3 * (time.perf_counter() - t_data)))
        loss, parts = loss_terms(model, lp, x, level, a, ds)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        for k, v in parts.items():
            acc.setdefault(k, []).append(v)
        acc.setdefault(f"bpp@{level}", []).append(parts["bpp_l"])
        acc.setdefault(f"psnr@{level}", []).append(-10 * torch.log10(parts["mse_l"].clamp_min(1e-10)))
        if step % a.log_every == 0:
            # the one wait for the GPU per log line
            m = {k: torch.stack(v).mean().item() for k, v in acc.items()}
            now = time.time()
            sps = (step - s_log) / (now - t_log)
            per = " ".join(f"L{l}:{m[f'bpp@{l}']:.3f}b/{m[f'psnr@{l}']:.1f}dB"
                           for l in range(1, cfg.levels + 1) if f"bpp@{l}" in m)
            print(f"step {step} loss {m['loss']:.4f} mse {m['mse_full']:.5f} "
                  f"lpips {m['lpips_full']:.4f} "
                  + (f"dists {m['dists_full']:.4f}/{m['dists_l']:.4f} " if ds is not None else "")
                  + f"bpp_full {m['bpp_full']:.3f} bpp_z {m['bpp_z']:.4f} "
                  f"cons {m['cons']:.4f} | {per} | lr {lr:g} {sps:.2f} steps/s "
                  f"(data {m['data_ms']:.0f} ms/step)", flush=True)
            t_log, s_log, acc = now, step, {}
        # training time excludes checkpoint writes
        wall += time.time() - t_prev
        if step % a.save_every == 0:
            save()
        t_prev = time.time()
    save()
    print(f"saved {ckpt_path} at step {step} ({wall:.0f} s of training)", flush=True)


def stop_on_signals():
    """A flag that SIGINT and SIGTERM raise, so a loop saves and stops between steps."""
    stop = {"flag": False}

    def on_signal(signum, _frame):
        print(f"signal {signum}: saving and stopping", flush=True)
        stop["flag"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return stop


def on_device(crops, device):
    """uint8 NHWC crops -> float NCHW in [0, 1] on the device, converted there. From pinned
    memory the copy is queued behind the step in flight instead of waiting for it (a copy from
    ordinary memory first waits for the GPU to finish everything queued)."""
    if device.type == "cuda":
        crops = crops.pin_memory()
    return crops_to_float(crops.to(device, non_blocking=True))


def LPIPS(device):
    from .perceptual import LPIPSAlex
    return LPIPSAlex().to(device)


def DISTS(device):
    from .dists import DISTS as Dists
    return Dists().to(device)


def devices_of(runs) -> str:
    """'cuda (NVIDIA H200) + cpu': every device that trained, in order of first use."""
    seen = []
    for r in runs or ():
        if r.get("device") and r["device"] not in seen:
            seen.append(r["device"])
    return " + ".join(seen)


def data_of(runs) -> str:
    """The photos every run trained on, in order of first use ('A, then B'); runs recorded
    before the photos were (no 'data' entry) trained on the original 41."""
    seen = []
    for r in runs or ():
        d = None if "averaged" in r else r.get("data", DATA_DESCRIPTION)
        if d and d not in seen:
            seen.append(d)
    return ", then ".join(seen) or DATA_DESCRIPTION


def training_record(step, wall, device, a, cfg, history=()):
    return {"steps": int(step), "wall_time_s": round(float(wall)),
            "device": devices_of(history) or str(device),
            "threads": torch.get_num_threads() if device.type == "cpu" else None,
            "data": data_of(history), "crop": a.crop, "batch": a.batch,
            "optimizer": "Adam, gradient norm clipped at 1; learning rate and lambda scales "
                         "of each step range in `runs` (the `lambda` entry is the last run's)",
            "lambda": lambda_record(cfg.levels, a),
            "runs": list(history),
            "date": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def load_model_for_export(ckpt, untrained: bool):
    """Returns (model, training record for model.json)."""
    if untrained:
        torch.manual_seed(0)
        model = SICLite(ModelConfig())
        return model.eval(), {"steps": 0, "wall_time_s": 0, "device": "none",
                              "data": "untrained: random initialisation (torch seed 0)",
                              "crop": 128, "batch": 8, "lambda": {}, "date": None}
    path = Path(ckpt or default_ckpt())
    ck = torch.load(path, map_location="cpu", weights_only=False)
    model = SICLite(ModelConfig.from_dict(ck["config"]))
    model.load_state_dict(ck["model"])
    # the weights as the bundle stores them: evaluation then measures the shipped model
    from .export import round_kernels_to_float16
    return round_kernels_to_float16(model.eval()), ck["training"]
