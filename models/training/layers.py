"""Building blocks: generalized divisive normalisation (GDN) and conv helpers."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class NonNegative(nn.Module):
    """Stores a non-negative tensor as the square of a parameter bounded from below.

    value = max(p, sqrt(floor))**2 ; the bound keeps gradients alive near zero.
    """

    def __init__(self, init: torch.Tensor, floor: float = 1e-6):
        super().__init__()
        self.floor = float(floor)
        self.p = nn.Parameter(torch.sqrt(init.clamp_min(self.floor)))

    def forward(self) -> torch.Tensor:
        return self.p.clamp_min(self.floor ** 0.5) ** 2


class GDN(nn.Module):
    """y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)  (inverse: multiply instead)."""

    def __init__(self, channels: int, inverse: bool = False):
        super().__init__()
        self.inverse = inverse
        self.beta = NonNegative(torch.ones(channels))
        self.gamma = NonNegative(0.1 * torch.eye(channels))

    def forward(self, x):
        c = x.shape[1]
        norm = F.conv2d(x * x, self.gamma().view(c, c, 1, 1), self.beta())
        if self.inverse:
            return x * torch.sqrt(norm)
        return x * torch.rsqrt(norm)


class Transform(nn.Sequential):
    """g_a / g_s: a plain Sequential (same parameter names), with an opt-in for training in
    bfloat16. With `inner_bf16`, every layer but the last runs under autocast (on CPUs with AMX
    1.8x the steps with 2 threads here); the last layer runs in float32 so the latent y and the
    reconstruction, which the rate and distortion terms read, keep full precision."""

    inner_bf16 = False

    def forward(self, x):
        if not self.inner_bf16:
            return super().forward(x)
        with torch.autocast(x.device.type, dtype=torch.bfloat16):
            for layer in list(self)[:-1]:
                x = layer(x)
        return self[-1](x.float())


def conv(cin, cout, k=5, stride=2):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def deconv(cin, cout, k=5, stride=2):
    return nn.ConvTranspose2d(cin, cout, k, stride=stride, padding=k // 2,
                              output_padding=stride - 1)


def subpixel_taps(k: int, p: int) -> dict:
    """{phase a: {input offset d: kernel row}}: output row 2m+a of a stride-2 transposed
    convolution (kernel k, padding p) takes input row m+d through kernel row a + p - 2d."""
    return {a: {d: a + p - 2 * d for d in (-1, 0, 1) if 0 <= a + p - 2 * d < k} for a in (0, 1)}


class SubPixelConv(nn.Module):
    """The same function as a stride-2 `deconv`, computed as one 3×3 convolution that writes the
    four output phases as channels, then depth-to-space (PixelShuffle / ONNX DepthToSpace).

    ONNX Runtime's CPU provider runs this form about twice as fast as ConvTranspose (g_s at
    1280×720 on 2 cores: 1040 → 470 ms in examples/bench), so the exported graphs use it;
    training keeps the transposed convolution."""

    def __init__(self, t: nn.ConvTranspose2d):
        super().__init__()
        k, s, p = t.kernel_size[0], t.stride[0], t.padding[0]
        if (t.kernel_size[1], t.stride[1], t.padding[1]) != (k, s, p) or s != 2 \
                or t.output_padding != (1, 1) or t.groups != 1 or t.dilation != (1, 1):
            raise ValueError(f"unsupported transposed convolution {t}")
        w = t.weight.detach()                      # [cin, cout, k, k]
        cin, cout = w.shape[:2]
        taps = subpixel_taps(k, p)
        if sum(len(v) for v in taps.values()) != k:
            raise ValueError(f"kernel {k} does not fit a 3x3 sub-pixel convolution")
        weight = torch.zeros(cout, 2, 2, cin, 3, 3, dtype=w.dtype)
        for a in (0, 1):
            for b in (0, 1):
                for d, ka in taps[a].items():
                    for e, kb in taps[b].items():
                        weight[:, a, b, :, d + 1, e + 1] = w[:, :, ka, kb].t()
        self.conv = nn.Conv2d(cin, 4 * cout, 3, padding=1, bias=t.bias is not None)
        self.conv.weight.data.copy_(weight.reshape(4 * cout, cin, 3, 3))
        if t.bias is not None:
            self.conv.bias.data.copy_(t.bias.detach().repeat_interleave(4))
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x):
        return self.shuffle(self.conv(x))


def with_subpixel_convs(seq: nn.Sequential) -> nn.Sequential:
    """A copy of `seq` in which every stride-2 transposed convolution is a SubPixelConv."""
    return nn.Sequential(*(SubPixelConv(m) if isinstance(m, nn.ConvTranspose2d) else m
                           for m in seq))
