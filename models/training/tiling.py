"""Tile margins of the heavy graphs, from the layers' kernel sizes, strides and paddings.

A position of a convolutional network's output depends only on a window of its input (its
receptive field). The runtime may run g_a + h_a and g_s on tiles of a large picture; a tile
computed with a margin at least as wide as that window's reach beyond the positions it keeps
gives exactly the whole picture's numbers there (docs/model.md, "Tiles"). This module works
the margins out so that `export` can state them in model.json.
"""

import math

import torch.nn as nn

from .layers import GDN, SubPixelConv


def _layers(seq):
    """(transposed, kernel, stride, padding) of every spatial layer of `seq`, input first.
    Pointwise layers (GDN, activations) do not widen the window."""
    out = []
    for m in seq.modules():
        if isinstance(m, SubPixelConv):
            raise ValueError("compute margins on the training model, not the export form")
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            k, s, p = m.kernel_size[0], m.stride[0], m.padding[0]
            if (m.kernel_size[1], m.stride[1], m.padding[1]) != (k, s, p):
                raise ValueError(f"non-square layer {m}")
            out.append((isinstance(m, nn.ConvTranspose2d), k, s, p))
    return out


def _synthesis_layers(model):
    """g_s's spatial layers, with the level adapter's two convolutions after each inverse
    GDN where the model has one (model.LevelAdapter): they widen the window too."""
    mod = getattr(model, "level_modulation", None)
    adapters = list(mod.adapter) if mod is not None and mod.adapter is not None else []
    out, k = [], 0
    for m in model.g_s:
        out += _layers(m)
        if isinstance(m, GDN) and k < len(adapters):
            out += _layers(adapters[k])
            k += 1
    return out


def _reach(layers, o):
    """First and last input position that output position `o` of `layers` depends on."""
    lo = hi = o
    for transposed, k, s, p in reversed(layers):
        if transposed:   # output o = s·i − p + t, t in [0, k)
            lo, hi = -(-(lo + p - k + 1) // s), (hi + p) // s
        else:            # input i = s·o − p + t, t in [0, k)
            lo, hi = s * lo - p, s * hi - p + k - 1
    return lo, hi


def _margin(layers, out_per_in, in_per_out):
    """How far beyond a block's own input positions its outputs reach, either side.
    Output position o belongs to input position o·in_per_out // out_per_in (a block of
    `in_per_out` inputs per output when downsampling, `out_per_in` outputs per input when
    upsampling)."""
    worst = 0
    for o in range(64 * out_per_in, 64 * out_per_in + 4 * out_per_in * in_per_out):
        lo, hi = _reach(layers, o)
        first = o * in_per_out // out_per_in
        last = first + in_per_out - 1
        worst = max(worst, first - lo, hi - last)
    return worst


def tile_halos(model) -> dict:
    """{"analysis_halo": pixels, a multiple of 64 (tiles of the analysis graph start on z's
    grid), "synthesis_halo": latent positions}."""
    g_a, h_a, g_s = _layers(model.g_a), _layers(model.h_a), _synthesis_layers(model)

    def stride(layers):
        return math.prod(s for _, _, s, _ in layers)

    a_y, a_z = stride(g_a), stride(g_a) * stride(h_a)
    reach = max(_margin(g_a, 1, a_y), _margin(g_a + h_a, 1, a_z))
    return {"analysis_halo": -(-reach // a_z) * a_z,
            "synthesis_halo": _margin(g_s, stride(g_s), 1) if g_s else 0}
