"""Tile margins: worked out from the layers, stated in model.json, and exact in ONNX Runtime."""

import dataclasses
import json

import numpy as np
import pytest

pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")

from training.config import DEFAULT_BUNDLE as BUNDLE, ModelConfig  # noqa: E402
from training.model import SICLite  # noqa: E402
from training.tiling import tile_halos  # noqa: E402


def spans(n, core, halo):
    """(ext, core) ranges along one axis: cores of `core` positions widened by `halo`."""
    return [(range(max(s - halo, 0), min(s + core + halo, n)), range(s, min(s + core, n)))
            for s in range(0, n, core)]


def tiled(run, x, core, halo, scales):
    """Runs `run` tile by tile on x [1,C,H,W] and pastes each tile's core back. Output i has
    `scales[i]` = (num, den) positions per input position (y: 1/16, z: 1/64, g_s: 16/1);
    tiles start where the output grids meet the input's."""
    H, W = x.shape[2:]
    full = [None] * len(scales)
    for er, cr in spans(H, core, halo):
        for ec, cc in spans(W, core, halo):
            outs = run(np.ascontiguousarray(x[:, :, er.start:er.stop, ec.start:ec.stop]))
            for i, (o, (num, den)) in enumerate(zip(outs, scales)):
                at = lambda p: -(-p * num // den)  # noqa: E731  (ceil: a partial cell counts)
                if full[i] is None:
                    full[i] = np.full(o.shape[:2] + (at(H), at(W)), np.nan, np.float32)
                r0, r1, c0, c1 = at(cr.start), at(cr.stop), at(cc.start), at(cc.stop)
                full[i][:, :, r0:r1, c0:c1] = o[:, :, r0 - at(er.start):r1 - at(er.start),
                                                c0 - at(ec.start):c1 - at(ec.start)]
    return full


def test_margins_from_the_layers():
    assert tile_halos(SICLite(ModelConfig())) == {"analysis_halo": 192, "synthesis_halo": 2}


def test_level_adapter_widens_the_synthesis_margin():
    """The adapter's 3×3 convolutions after each inverse GDN reach further: its margin is
    worked out with them, and tiles cut with it (not one position less) give the whole picture."""
    import torch
    torch.manual_seed(7)
    cfg = ModelConfig(N=16, M=32, Nh=16, Cz=8, Ch=16, slice_widths=(8, 8, 16), slice_hidden=16,
                      level_modulation=True, level_adapter=8)
    model = SICLite(cfg).eval()
    with torch.no_grad():
        for prm in model.level_modulation.adapter.parameters():
            prm.normal_(0, 0.3)
    halo = tile_halos(model)["synthesis_halo"]
    plain = SICLite(dataclasses.replace(cfg, level_adapter=0))
    assert halo > tile_halos(plain)["synthesis_halo"]
    y = torch.randn(1, 32, 13, 11)

    def run(t):
        with torch.no_grad():
            return [model.synthesize(torch.from_numpy(t), 2).numpy()]

    whole = run(y.numpy())[0]
    errs = [np.abs(tiled(run, y.numpy(), 4, h, ((16, 1),))[0] - whole).max()
            for h in (halo, halo - 1)]
    assert errs[0] < 1e-3 and errs[1] > 0.1, errs   # float noise against a real miss


@pytest.mark.skipif(not (BUNDLE / "model.json").exists(), reason="no committed bundle")
def test_committed_bundle_states_its_margins_and_they_are_exact():
    meta = json.loads((BUNDLE / "model.json").read_text())
    model = SICLite(ModelConfig.from_dict(meta["architecture"]))
    assert meta["tiling"] == tile_halos(model)
    halo_a, halo_s = meta["tiling"]["analysis_halo"], meta["tiling"]["synthesis_halo"]

    analysis = ort.InferenceSession(str(BUNDLE / "analysis.onnx"),
                                    providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, 336, 464), dtype=np.float32)  # not multiples of 64
    whole = analysis.run(None, {"x": x})
    for halo, exact in [(halo_a, True), (halo_a - 64, False)]:
        got = tiled(lambda t: analysis.run(None, {"x": t}), x, 64, halo, ((1, 16), (1, 64)))
        same = [np.array_equal(g, w) for g, w in zip(got, whole)]
        assert same == [True, True] if exact else not all(same), (halo, same)

    synthesis = ort.InferenceSession(str(BUNDLE / "synthesis.onnx"),
                                     providers=["CPUExecutionProvider"])
    y = np.round(np.random.default_rng(1).normal(0, 2, (1, meta["M"], 13, 19))).astype(np.float32)
    # at a level below the top, where the bundle's synthesis takes the level
    level = {"level": np.array([3.0], np.float32)} if "level" in meta.get(
        "synthesis_inputs", []) else {}

    def synthesize(t):
        return synthesis.run(None, {"y_hat": t, **level})[0]

    whole = synthesize(y)
    for halo, exact in [(halo_s, True), (halo_s - 1, False)]:
        got = tiled(lambda t: [synthesize(t)], y, 4, halo, ((16, 1),))[0]
        assert np.array_equal(got, whole) == exact, halo
