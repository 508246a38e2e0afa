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


def conv(cin, cout, k=5, stride=2):
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2)


def deconv(cin, cout, k=5, stride=2):
    return nn.ConvTranspose2d(cin, cout, k, stride=stride, padding=k // 2,
                              output_padding=stride - 1)
