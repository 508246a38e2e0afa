"""SIC-lite: a small progressive hyperprior codec after "Synonymous Variational Inference for
Perceptual Image Compression" (ICML 2025). Names follow the papers: g_a, g_s, h_a, h_s."""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import PAD_MULTIPLE, ModelConfig
from .entropy import FactorizedDensity, gaussian_likelihood
from .layers import GDN, Transform, conv, deconv


def ste_round(x: torch.Tensor) -> torch.Tensor:
    """round() in the forward pass, identity gradient."""
    return x + (torch.round(x) - x).detach()


class SliceParams(nn.Module):
    """Entropy parameters (mean, scale) of slice k from the hyper features and slices < k."""

    def __init__(self, cin: int, width: int, hidden: int, scale_min: float):
        super().__init__()
        self.scale_min = scale_min
        self.net = nn.Sequential(
            nn.Conv2d(cin, hidden, 1), nn.GELU(),
            nn.Conv2d(hidden, hidden * 3 // 4, 3, padding=1), nn.GELU(),
            nn.Conv2d(hidden * 3 // 4, 2 * width, 1),
        )

    def forward(self, hyper, y_prev=None):
        h = hyper if y_prev is None else torch.cat([hyper, y_prev], dim=1)
        mean, raw = self.net(h).chunk(2, dim=1)
        return mean, self.scale_min + F.softplus(raw)


class LevelAdapter(nn.Module):
    """A residual block that gives one stage of the level modulation spatial reach: `x +
    up(leaky(down(x) + embed[l]))`, two 3×3 convolutions through `hidden` channels with a
    per-level offset between them. A per-channel gain cannot add texture that depends on the
    neighbourhood; this can. `up` starts at zero, so a new adapter changes nothing."""

    def __init__(self, levels: int, channels: int, hidden: int):
        super().__init__()
        self.down = nn.Conv2d(channels, hidden, 3, padding=1)
        self.up = nn.Conv2d(hidden, channels, 3, padding=1)
        self.embed = nn.Parameter(torch.zeros(levels - 1, hidden))
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x, embed, gate):
        h = F.leaky_relu(self.down(x) + embed.view(1, -1, 1, 1), 0.1)
        return x + gate * self.up(h)


class LevelModulation(nn.Module):
    """Tells g_s how many slices were transmitted. At level l < L the untransmitted slices are
    filled with their means, a smoother latent than a coded one; after each inverse GDN of g_s
    the features are scaled and shifted per channel, `x * (1 + scale[l]) + shift[l]`, and,
    with `adapter` > 0, passed through a LevelAdapter, so the synthesis can answer a fill with
    more texture. The full level fills nothing and passes unchanged (no row for it).
    Zero-initialised: a new modulation leaves g_s as it was."""

    def __init__(self, levels: int, stages: int, channels: int, adapter: int = 0):
        super().__init__()
        self.levels = levels
        self.scale = nn.Parameter(torch.zeros(levels - 1, stages, channels))
        self.shift = nn.Parameter(torch.zeros(levels - 1, stages, channels))
        self.adapter = (nn.ModuleList(LevelAdapter(levels, channels, adapter)
                                      for _ in range(stages)) if adapter else None)

    def synthesize(self, layers, y_hat, level):
        """Runs `layers` (g_s, possibly in sub-pixel form) on y_hat at `level`: an int in
        training, a float tensor of shape [1] in the exported graph."""
        if isinstance(level, int):
            if level < 1:   # a negative row index would read another level's table
                raise ValueError(f"level {level} < 1")
            if level >= self.levels:
                return layers(y_hat)
            gate = 1.0

            def row(t):
                return t[level - 1]
        else:
            # the graph's input: clamp into the table, and gate the top level to identity
            idx = torch.clamp(level - 1, 0, self.levels - 2).long()
            gate = (level < self.levels).float().view(1, 1)

            def row(t):
                return t.index_select(0, idx)[0]
        scale, shift = row(self.scale) * gate, row(self.shift) * gate
        x, k = y_hat, 0
        for layer in layers:
            x = layer(x)
            if isinstance(layer, GDN):
                c = x.shape[1]
                x = x * (1 + scale[k].view(1, c, 1, 1)) + shift[k].view(1, c, 1, 1)
                if self.adapter is not None:
                    a = self.adapter[k]
                    x = a(x, row(a.embed), gate)
                k += 1
        return x


class SICLite(nn.Module):
    def __init__(self, cfg: ModelConfig = ModelConfig()):
        super().__init__()
        self.cfg = cfg
        N, M, Nh, Cz, Ch = cfg.N, cfg.M, cfg.Nh, cfg.Cz, cfg.Ch
        assert sum(cfg.slice_widths) == M
        self.g_a = Transform(
            conv(3, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M))
        self.g_s = Transform(
            deconv(M, N), GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True),
            deconv(N, N), GDN(N, inverse=True), deconv(N, 3))
        self.h_a = nn.Sequential(
            conv(M, Nh, 3, 1), nn.LeakyReLU(0.1), conv(Nh, Nh), nn.LeakyReLU(0.1), conv(Nh, Cz))
        self.h_s = nn.Sequential(
            deconv(Cz, Nh), nn.LeakyReLU(0.1), deconv(Nh, Nh), nn.LeakyReLU(0.1),
            conv(Nh, Ch, 3, 1))
        self.slices = nn.ModuleList(
            SliceParams(Ch + o, w, cfg.slice_hidden, cfg.scale_min)
            for o, w in zip(cfg.offsets(), cfg.slice_widths))
        self.density_z = FactorizedDensity(Cz)
        stages = sum(isinstance(m, GDN) for m in self.g_s)
        if cfg.level_adapter and not cfg.level_modulation:
            raise ValueError("level_adapter needs level_modulation")
        self.level_modulation = (LevelModulation(cfg.levels, stages, N, cfg.level_adapter)
                                 if cfg.level_modulation else None)

    def synthesize(self, y_hat, level: int):
        """g_s, told the level (the number of transmitted slices) where the model has a
        LevelModulation."""
        if self.level_modulation is None:
            return self.g_s(y_hat)
        return self.level_modulation.synthesize(self.g_s, y_hat, level)

    def synthesize_filled(self, y_hat, level: int, fill: str):
        """Rule 6 of docs/model.md: the level modulation answers mean fills (it was trained on
        them); sampled slices are synthesised as coded ones, at the full level."""
        return self.synthesize(y_hat, level if fill == "mean" else self.cfg.levels)

    # -- pieces shared by training, evaluation and the ONNX graphs -----------------------------
    def analysis(self, x):
        """y = g_a(x) and z = h_a(y), y first padded to a multiple of 4 positions by repeating
        its last row / column: a picture then needs padding to 16 pixels only, not to h_a's 64
        (docs/model.md rule 1). Padded unconditionally, so the exported graph keeps the pad."""
        y = self.g_a(x)
        h, w = y.shape[2], y.shape[3]
        return y, self.h_a(F.pad(y, (0, (-w) % 4, 0, (-h) % 4), mode="replicate"))

    def hyper(self, z_hat, y):
        """h_s(z_hat) cut to y's grid: h_s gives 4·hz × 4·wz positions, y may have fewer."""
        return self.h_s(z_hat)[..., :y.shape[2], :y.shape[3]]

    def slice_params(self, k, hyper, y_hat):
        o = self.cfg.offsets()[k]
        return self.slices[k](hyper, y_hat[:, :o] if k > 0 else None)

    def slice_of(self, y, k):
        o, w = self.cfg.offsets()[k], self.cfg.slice_widths[k]
        return y[:, o:o + w]

    def fill_untransmitted(self, hyper, y_hat_sent, level, mode="uniform", generator=None):
        """Rule 5 of docs/model.md: slices level..L-1 in order, from their means (+ round(U(-2,2)))."""
        parts = [y_hat_sent[:, :sum(self.cfg.slice_widths[:level])]] if level > 0 else []
        for k in range(level, self.cfg.levels):
            prev = torch.cat(parts, 1) if parts else None
            mean, scale = self.slices[k](hyper, prev)
            if mode == "uniform":
                u = torch.rand(mean.shape, generator=generator, device="cpu").to(mean)
                mean = mean + torch.round(4.0 * u - 2.0)
            elif mode.startswith("gauss"):
                # evaluation only ("gauss0.25"): a gentler draw, mean + T * scale * N(0, 1)
                n = torch.randn(mean.shape, generator=generator, device="cpu").to(mean)
                mean = mean + float(mode[5:]) * scale * n
            elif mode != "mean":
                raise ValueError(mode)
            parts.append(mean)
        return torch.cat(parts, 1)

    # -- training forward ---------------------------------------------------------------------
    def forward(self, x, level: int, fill: str = "mean", full: bool = True):
        """Returns full-latent and level-`level` reconstructions, rates in bits per pixel.
        `fill` says how the level-`level` reconstruction fills the untransmitted slices;
        `full=False` skips the full-latent picture (x_full None) below the top level."""
        B, _, H, W = x.shape
        npix = B * H * W
        y, z = self.analysis(x)
        med = self.density_z.medians().view(1, -1, 1, 1)
        z_noisy = z + torch.empty_like(z).uniform_(-0.5, 0.5)
        rate_z = -torch.log2(self.density_z.likelihood(z_noisy)).sum() / npix
        z_hat = ste_round(z - med) + med
        hyper = self.hyper(z_hat, y)

        y_hat_parts, rate_y = [], []
        for k in range(self.cfg.levels):
            prev = torch.cat(y_hat_parts, 1) if k else None
            mean, scale = self.slices[k](hyper, prev)
            yk = self.slice_of(y, k)
            noisy = yk - mean + torch.empty_like(yk).uniform_(-0.5, 0.5)
            rate_y.append(-torch.log2(gaussian_likelihood(noisy, scale)).sum() / npix)
            y_hat_parts.append(ste_round(yk - mean) + mean)
        y_hat = torch.cat(y_hat_parts, 1)
        x_full = (self.synthesize(y_hat, self.cfg.levels)
                  if full or level >= self.cfg.levels else None)

        out = {"y": y, "y_hat": y_hat, "x_full": x_full, "rate_z": rate_z,
               "rate_y": torch.stack(rate_y)}
        if level < self.cfg.levels:
            y_lvl = self.fill_untransmitted(hyper, y_hat, level, fill)
            out["x_level"] = self.synthesize_filled(y_lvl, level, fill)
        else:
            out["x_level"] = x_full
        return out

    # -- inference following the coding rules ---------------------------------------------------
    @torch.no_grad()
    def code(self, x, level, mode="mean", generator=None, z_table=None, rdo_lambda=0.0):
        """Quantise exactly as docs/model.md (rules 2-6, without the scale buckets) and return
        the reconstruction and the likelihood-estimated bits per pixel of the level.
        `rdo_lambda` > 0 quantises y as sicenc's rdo-lambda does (rule 4), the bits taken from
        the Gaussian itself instead of its integer table."""
        y, z = self.analysis(x)
        z_hat = self.quantise_z(z, z_table)
        hyper = self.hyper(z_hat, y)
        return self.code_latent(y, z_hat, hyper, level, mode, generator, rdo_lambda)

    @torch.no_grad()
    def quantise_z(self, z, z_table=None):
        """Rule 2: z rounded around its medians (clamped to the integer tables' range if given)."""
        if z_table is None:
            med = self.density_z.medians().view(1, -1, 1, 1)
            return torch.round(z - med) + med
        med = torch.tensor([t["median"] for t in z_table]).view(1, -1, 1, 1)
        lo = torch.tensor([float(t["min"]) for t in z_table]).view(1, -1, 1, 1)
        hi = torch.tensor([float(t["min"] + len(t["freqs"]) - 1) for t in z_table]).view(1, -1, 1, 1)
        return torch.minimum(torch.maximum(torch.round(z - med), lo), hi) + med

    @torch.no_grad()
    def code_latent(self, y, z_hat, hyper, level, mode="mean", generator=None, rdo_lambda=0.0):
        """Rules 4-6 for a given latent y (from g_a, or refined by the encoder): the
        reconstruction and the likelihood bits per pixel of the padded picture (16 h x 16 w)."""
        H, W = 16 * y.shape[2], 16 * y.shape[3]
        bits = -torch.log2(self.density_z.likelihood(z_hat)).sum()
        parts = []
        for k in range(level):
            mean, scale = self.slices[k](hyper, torch.cat(parts, 1) if parts else None)
            q = rd_round(self.slice_of(y, k) - mean, scale, rdo_lambda)
            bits = bits - torch.log2(gaussian_likelihood(q, scale)).sum()
            parts.append(q + mean)
        sent = torch.cat(parts, 1) if parts else None
        y_hat = self.fill_untransmitted(hyper, sent, level, mode, generator)
        return self.synthesize_filled(y_hat, level, mode), float(bits) / (H * W)


def rd_round(r, scale, rdo_lambda=0.0):
    """Rounding of the residual r = y - mean, or with rdo_lambda > 0, of floor(r) and
    floor(r) + 1 the one with the lower (r - q)^2 + rdo_lambda * bits(q) (ties to floor)."""
    if rdo_lambda <= 0:
        return torch.round(r)
    lo = torch.floor(r)
    hi = lo + 1

    def cost(q):
        return (r - q) ** 2 - rdo_lambda * torch.log2(gaussian_likelihood(q, scale))
    return torch.where(cost(hi) < cost(lo), hi, lo)


def pad_to(x, multiple=PAD_MULTIPLE):
    """Rule 1: pad right/bottom by repeating the last column/row."""
    _, _, h, w = x.shape
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x


def count_parameters(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
