"""Entropy models: a learned factorized density for z and zero-mean Gaussians for y,
plus the integer frequency tables the Rust coder is built from (docs/model.md)."""

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

LIKELIHOOD_FLOOR = 1e-9


class FactorizedDensity(nn.Module):
    """Per-channel univariate density given by a monotone cumulative function
    c(x) = sigmoid(f(x)), f a small per-channel network with non-negative matrices
    (Balle et al., 2018, "Variational image compression with a scale hyperprior", App. 6.1).
    """

    def __init__(self, channels: int, filters=(3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        self.channels = channels
        dims = (1,) + tuple(filters) + (1,)
        per_layer = init_scale ** (1.0 / (len(dims) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(dims) - 1):
            init = math.log(math.expm1(1.0 / per_layer / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[i + 1], 1) - 0.5))
            if i < len(dims) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def logits_cdf(self, x: torch.Tensor) -> torch.Tensor:
        """x: [C, 1, n] -> logit of the cumulative, same shape."""
        h = x
        for i, (m, b) in enumerate(zip(self.matrices, self.biases)):
            h = torch.matmul(F.softplus(m), h) + b
            if i < len(self.factors):
                h = h + torch.tanh(self.factors[i]) * torch.tanh(h)
        return h

    def _as_channels(self, z):
        # [B, C, H, W] -> [C, 1, B*H*W]
        c = z.shape[1]
        return z.transpose(0, 1).reshape(c, 1, -1)

    def likelihood(self, z: torch.Tensor) -> torch.Tensor:
        """Probability mass of the unit interval around every value of z ([B, C, H, W])."""
        v = self._as_channels(z)
        lower = self.logits_cdf(v - 0.5)
        upper = self.logits_cdf(v + 0.5)
        sign = -torch.sign(lower + upper).detach()
        p = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        p = p.clamp_min(LIKELIHOOD_FLOOR)
        b, c, h, w = z.shape
        return p.reshape(c, b, h, w).transpose(0, 1)

    @torch.no_grad()
    def quantile(self, q: float, iters: int = 60) -> torch.Tensor:
        """Per-channel value where the cumulative equals q (bisection on the monotone logit)."""
        target = math.log(q / (1.0 - q))
        ref = next(self.parameters())
        lo = torch.full((self.channels, 1, 1), -1e4, dtype=ref.dtype, device=ref.device)
        hi = -lo
        for _ in range(iters):
            mid = 0.5 * (lo + hi)
            above = self.logits_cdf(mid) > target
            hi = torch.where(above, mid, hi)
            lo = torch.where(above, lo, mid)
        return (0.5 * (lo + hi)).view(-1)

    @torch.no_grad()
    def medians(self) -> torch.Tensor:
        return self.quantile(0.5)


def gaussian_likelihood(residual: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Mass of [r-0.5, r+0.5] under N(0, scale^2) (symmetric form for precision)."""
    r = torch.abs(residual)
    inv = 1.0 / (scale * math.sqrt(2.0))
    upper = 0.5 * torch.erfc((r - 0.5) * inv)   # Phi(-(r-0.5)/s)
    lower = 0.5 * torch.erfc((r + 0.5) * inv)   # Phi(-(r+0.5)/s)
    return (upper - lower).clamp_min(LIKELIHOOD_FLOOR)


# ---------------------------------------------------------------------------------------------
# Integer tables

def quantize_pmf(pmf, precision: int = 16):
    """Probabilities -> integers >= 1 summing to exactly 2^precision (deterministic)."""
    p = np.asarray(pmf, dtype=np.float64)
    p = np.maximum(p, 0.0)
    n = len(p)
    total = 1 << precision
    if n == 0 or n > total:
        raise ValueError(f"table of {n} entries cannot be coded at precision {precision}")
    p = p / p.sum()
    share = p * (total - n)
    f = np.floor(share).astype(np.int64) + 1
    rest = total - int(f.sum())
    if rest > 0:
        frac = share - np.floor(share)
        order = np.lexsort((np.arange(n), -frac))   # largest fraction first, ties by index
        f[order[:rest]] += 1
    assert int(f.sum()) == total and int(f.min()) >= 1
    return [int(v) for v in f]


def _phi(x):
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def y_scale_table(n: int = 64, lo: float = 0.11, hi: float = 64.0):
    t = np.exp(np.linspace(math.log(lo), math.log(hi), n)).astype(np.float32)
    t[0], t[-1] = np.float32(lo), np.float32(hi)
    return [float(v) for v in t]


def y_tables(scales, precision: int = 16, max_radius: int = 400):
    """One zero-mean discretised Gaussian per scale over [-R, R]; the tails are folded into
    the end symbols (the coder clamps symbols to the table's range)."""
    out = []
    for s in scales:
        s = float(s)
        r = int(min(max_radius, math.ceil(6.0 * s) + 2))
        pmf = []
        for q in range(-r, r + 1):
            hi = 1.0 if q == r else _phi((q + 0.5) / s)
            lo = 0.0 if q == -r else _phi((q - 0.5) / s)
            pmf.append(hi - lo)
        out.append({"min": -r, "freqs": quantize_pmf(pmf, precision)})
    return out


@torch.no_grad()
def z_tables(density: FactorizedDensity, precision: int = 16, tail: float = 1e-7,
             max_len: int = 2048):
    """Per-channel median and integer table of the symbol s = round(z - median)."""
    d = _double_copy(density)
    med = d.medians()
    lo = d.quantile(tail)
    hi = d.quantile(1.0 - tail)
    out = []
    for c in range(d.channels):
        m = float(med[c])
        smin = int(math.floor(float(lo[c]) - m))
        smax = int(math.ceil(float(hi[c]) - m))
        smin = min(smin, -1)
        smax = max(smax, 1)
        if smax - smin + 1 > max_len:
            half = max_len // 2
            smin, smax = max(smin, -half), min(smax, half - 1)
        s = torch.arange(smin, smax + 1, dtype=torch.float64)
        edges = torch.cat([s - 0.5, s[-1:] + 0.5]) + m
        ch = torch.full((d.channels, 1, len(edges)), 0.0, dtype=torch.float64)
        ch[c, 0] = edges
        cdf = torch.sigmoid(d.logits_cdf(ch))[c, 0]
        cdf[0] = 0.0
        cdf[-1] = 1.0
        pmf = (cdf[1:] - cdf[:-1]).clamp_min(0).numpy()
        out.append({"median": float(np.float32(m)), "min": smin,
                    "freqs": quantize_pmf(pmf, precision)})
    return out


def _double_copy(density: FactorizedDensity) -> FactorizedDensity:
    import copy
    d = copy.deepcopy(density).to("cpu").double()
    return d
