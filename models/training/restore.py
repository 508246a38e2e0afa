"""Rebuild a training checkpoint from an exported bundle.

The checkpoint lives outside git and can be lost (a fresh machine); the bundle is committed.
Every network weight is an ONNX initializer named after its parameter, so it comes back
exactly, the transposed convolutions from their sub-pixel form (`layers.SubPixelConv`,
inverted). The factorized density of z is not a graph: only its integer tables are shipped, so
its parameters are fitted to them (cross-entropy of the table's probabilities plus a pin on each
median); the fit's KL divergence is reported.
Adam's moments are not in a bundle: training resumes with a fresh optimizer."""

import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .config import DEFAULT_BUNDLE, ModelConfig
from .entropy import FactorizedDensity
from .layers import subpixel_taps
from .model import SICLite


class BundleError(ValueError):
    pass


def _initializers(path: Path) -> dict:
    import onnx
    from onnx import numpy_helper
    if not path.exists():
        raise BundleError(f"{path} not found")
    g = onnx.load(str(path)).graph
    init = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    # kernels are stored in float16 and widened by a Cast; the exporter stores equal tensors
    # once and names the copies with Identity nodes (possibly of a widened kernel)
    widened = {}
    for n in g.node:
        src = widened.get(n.input[0], n.input[0]) if n.input else None
        if n.op_type == "Cast" and src in init:
            widened[n.output[0]] = src
        elif n.op_type == "Identity" and src in init:
            init[n.output[0]] = init[src]
    return init


def _from_subpixel(weight: np.ndarray, bias: np.ndarray, t: nn.ConvTranspose2d):
    """Inverse of SubPixelConv: the 3x3 four-phase kernel back to the k x k transposed one."""
    k, p = t.kernel_size[0], t.padding[0]
    cin, cout = t.weight.shape[:2]
    if weight.shape != (4 * cout, cin, 3, 3) or bias.shape != (4 * cout,):
        raise BundleError(f"sub-pixel kernel {weight.shape} does not fit {t}")
    w6 = weight.reshape(cout, 2, 2, cin, 3, 3)
    w = np.full((cin, cout, k, k), np.nan, dtype=np.float32)
    taps = subpixel_taps(k, p)
    for a in (0, 1):
        for b in (0, 1):
            for d, ka in taps[a].items():
                for e, kb in taps[b].items():
                    w[:, :, ka, kb] = w6[:, a, b, :, d + 1, e + 1].T
    if np.isnan(w).any():
        raise BundleError(f"sub-pixel kernel leaves taps of {t} unset")
    b4 = bias.reshape(cout, 4)
    if not np.array_equal(b4, np.repeat(b4[:, :1], 4, axis=1)):
        raise BundleError("sub-pixel bias differs between phases")
    return w, b4[:, 0].copy()


def _load_graph(modules: dict, path: Path, prefix: str, into: str, state: dict, done: set,
                also=()):
    """Copy the initializers of one graph into `state`. The export names them after the
    parameters of its wrapper module (`prefix` + the model's own path below `into`; `also`:
    more such pairs); `<layer>.conv.*` is a transposed convolution exported in sub-pixel form."""
    init = _initializers(path)
    for name in sorted(init):
        pair = next(((p, i) for p, i in ((prefix, into), *also) if name.startswith(p)), None)
        if pair is None:
            raise BundleError(f"{path.name}: unexpected tensor {name}")
        key = pair[1] + name[len(pair[0]):]
        if key.endswith(".conv.weight") or key.endswith(".conv.bias"):
            layer = key.rsplit(".", 2)[0]
            t = modules.get(layer)
            if not isinstance(t, nn.ConvTranspose2d):
                raise BundleError(f"{path.name}: {name} is no transposed convolution")
            if key.endswith(".bias"):
                continue   # taken with the weight
            bias = init.get(name[:-len("weight")] + "bias")
            if bias is None:
                raise BundleError(f"{path.name}: {name} has no bias")
            w, b = _from_subpixel(init[name], bias, t)
            pairs = [(layer + ".weight", w), (layer + ".bias", b)]
        else:
            pairs = [(key, init[name])]
        for k, v in pairs:
            if k not in state or tuple(state[k].shape) != v.shape or k in done:
                raise BundleError(f"{path.name}: {name} does not fit the model ({k})")
            state[k] = torch.from_numpy(np.array(v, dtype=np.float32))
            done.add(k)


def fit_density(density: FactorizedDensity, tables, iters: int = 3000, lr: float = 0.02):
    """Fit the density's parameters to the per-channel integer tables of s = round(z - median).

    Returns the KL divergence (bits per symbol) of each channel's table from the fitted one,
    both measured with the tables' folded tails (the first and last symbol carry the tails)."""
    C = density.channels
    if len(tables) != C:
        raise BundleError(f"{len(tables)} z tables for {C} channels")
    n = max(len(t["freqs"]) for t in tables)
    edges = torch.zeros(C, 1, n + 1, dtype=torch.float64)
    target = torch.zeros(C, n, dtype=torch.float64)
    mask = torch.zeros(C, n, dtype=torch.bool)
    med = torch.tensor([t["median"] for t in tables], dtype=torch.float64)
    for c, t in enumerate(tables):
        f = torch.tensor(t["freqs"], dtype=torch.float64)
        L = len(f)
        s = torch.arange(t["min"], t["min"] + L + 1, dtype=torch.float64) - 0.5
        edges[c, 0, :L + 1] = s + t["median"]
        edges[c, 0, L + 1:] = edges[c, 0, L]          # padding: empty bins
        target[c, :L] = f / f.sum()
        mask[c, :L] = True
    last = mask.sum(1) - 1
    d = density.double()
    with torch.no_grad():
        # centre each channel's initial density on its median: the first layer is affine in x
        m0 = nn.functional.softplus(d.matrices[0])
        d.biases[0].sub_(m0 * med.view(C, 1, 1))
    opt = torch.optim.Adam(d.parameters(), lr=lr)

    idx = torch.arange(n + 1).view(1, -1)
    below, above = idx == 0, idx > last.view(-1, 1)   # folded tails, as in the tables

    def table_pmf():
        cdf = torch.sigmoid(d.logits_cdf(edges))[:, 0]
        cdf = torch.where(above, 1.0, torch.where(below, 0.0, cdf))
        return (cdf[:, 1:] - cdf[:, :-1]).clamp_min(1e-12)

    for i in range(iters):
        if i == int(iters * 0.7):
            for g in opt.param_groups:
                g["lr"] = lr / 10
        q = table_pmf()
        ce = -(target * torch.log(q)).masked_fill(~mask, 0).sum(1)
        pin = d.logits_cdf(med.view(C, 1, 1)).view(C) ** 2
        loss = (ce + pin).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        q = table_pmf()
        kl = (target * (torch.log(target.clamp_min(1e-300)) - torch.log(q))).masked_fill(~mask, 0)
        kl_bits = kl.sum(1) / math.log(2)
    density.float()
    return kl_bits.numpy()


def checkpoint_from_bundle(bundle: Path, fit_iters: int = 3000, verbose: bool = True):
    """A checkpoint dict `train` resumes from: weights, step count, wall time and run history
    as recorded in the bundle's model.json; no optimizer or RNG state."""
    bundle = Path(bundle)
    meta_path = bundle / "model.json"
    if not meta_path.exists():
        raise BundleError(f"{meta_path} not found")
    try:
        meta = json.loads(meta_path.read_text())
        cfg = ModelConfig.from_dict(meta["architecture"])
        with torch.random.fork_rng():   # the same fit every time, the caller's RNG untouched
            torch.manual_seed(0)
            model = SICLite(cfg)
            kl = _restore_into(model, cfg, meta, bundle, fit_iters)
    except BundleError:
        raise
    except (KeyError, TypeError, ValueError, AssertionError) as e:
        raise BundleError(f"{meta_path}: not a bundle this code can restore ({e!r})") from e
    if verbose:
        med_err = (model.density_z.medians().double()
                   - torch.tensor([t["median"] for t in meta["entropy"]["z"]],
                                  dtype=torch.float64)).abs().max()
        print(f"restored {bundle} ({meta['model_id']}): z density fitted to its tables, "
              f"KL mean {kl.mean():.2e} max {kl.max():.2e} bits/symbol, "
              f"median error max {float(med_err):.1e}", flush=True)
    tr = meta.get("training", {})
    return {"config": cfg.to_dict(), "model": model.state_dict(),
            "step": int(tr.get("steps", 0)), "wall_time_s": float(tr.get("wall_time_s", 0)),
            "entropy_steps": int(tr.get("entropy_steps", 0)),
            "device": "cpu", "history": list(tr.get("runs", [])), "training": tr,
            "restored_from": {"bundle": str(bundle), "model_id": meta["model_id"],
                              "z_fit_kl_bits_max": float(kl.max())}}


def _restore_into(model: SICLite, cfg: ModelConfig, meta: dict, bundle: Path, fit_iters: int):
    """Network weights from the graphs, z density fitted; returns the fit's KL per channel."""
    g = meta["graphs"]
    if len(g["slices"]) != cfg.levels:
        raise BundleError(f"{len(g['slices'])} slice graphs for {cfg.levels} levels")
    state, done, mods = model.state_dict(), set(), dict(model.named_modules())
    _load_graph(mods, bundle / g["analysis"], "m.", "", state, done)
    _load_graph(mods, bundle / g["hyper_synthesis"], "h_s.", "h_s.", state, done)
    for k, f in enumerate(g["slices"]):
        _load_graph(mods, bundle / f, "net.net.", f"slices.{k}.net.", state, done)
    _load_graph(mods, bundle / g["synthesis"], "g_s.", "g_s.", state, done,
                also=[("level_modulation.", "level_modulation.")])
    missing = [k for k in state if k not in done and not k.startswith("density_z.")]
    if missing:
        raise BundleError(f"{bundle}: no weights for {', '.join(missing[:4])}")
    model.load_state_dict(state)
    return fit_density(model.density_z, meta["entropy"]["z"], iters=fit_iters)
