"""ONNX export round trip (ONNX Runtime vs PyTorch), determinism, and the committed bundle."""

import dataclasses
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from training.config import DEFAULT_BUNDLE as BUNDLE, ModelConfig  # noqa: E402
from training.export import export_bundle, verify_against_torch, verify_bundle  # noqa: E402
from training.model import SICLite  # noqa: E402

TOL = 1e-4


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    from PIL import Image
    d = tmp_path_factory.mktemp("photo")
    i, j = np.mgrid[0:96, 0:96]
    a = np.stack([128 + 100 * np.sin(i / 7.0), 128 + 90 * np.cos(j / 5.0),
                  128 + 60 * np.sin((i + j) / 11.0)], -1).astype(np.uint8)
    Image.fromarray(a).save(d / "p.png")
    return d / "p.png"


@pytest.fixture(scope="module")
def exported(tmp_path_factory, photo):
    torch.manual_seed(3)
    model = SICLite(ModelConfig()).eval()
    out = tmp_path_factory.mktemp("bundle")
    meta = export_bundle(model, out, {"steps": 0}, golden_photo=photo)
    return model, out, meta


def test_onnx_matches_torch(exported):
    model, out, _ = exported
    errs = verify_bundle(out, verbose=False)
    assert max(errs.values()) <= TOL, errs
    assert verify_against_torch(model, out, verbose=False) <= TOL


def test_analysis_pads_y_for_h_a(exported):
    """A picture padded to 16 pixels only: the graph pads y to 4 positions (repeating its
    last row and column) before h_a, exactly as SICLite.analysis does."""
    from training.export import _session
    model, out, _ = exported
    x = torch.rand(1, 3, 80, 144, generator=torch.Generator().manual_seed(5))
    y, z = _session(out / "analysis.onnx").run(None, {"x": x.numpy()})
    with torch.no_grad():
        yt, zt = model.analysis(x)
        zp = model.h_a(torch.nn.functional.pad(yt, (0, 3, 0, 3), mode="replicate"))
    assert y.shape[2:] == (5, 9) and z.shape[2:] == (2, 3)
    assert np.abs(y - yt.numpy()).max() <= TOL and np.abs(z - zt.numpy()).max() <= TOL
    assert torch.equal(zt, zp)
    assert model.hyper(torch.round(zt), yt).shape[2:] == (5, 9)


def test_export_is_deterministic(exported, tmp_path, photo):
    model, out, meta = exported
    again = export_bundle(model, tmp_path, {"steps": 0}, golden_photo=photo)
    assert again["model_id"] == meta["model_id"]
    for f in ["analysis.onnx", "synthesis.onnx", "slice_03.onnx"]:
        assert (tmp_path / f).read_bytes() == (out / f).read_bytes()


def test_contract_fields(exported):
    _, out, meta = exported
    for k in ("format_version", "name", "model_id", "M", "z_channels", "hyper_channels",
              "slice_widths", "levels", "pad_multiple", "default_sampling", "entropy", "graphs",
              "training"):
        assert k in meta
    assert len(meta["model_id"]) == 16 and int(meta["model_id"], 16) >= 0
    assert meta["default_sampling"] in ("uniform", "mean")
    assert sum(meta["slice_widths"]) == meta["M"] and len(meta["slice_widths"]) == meta["levels"]
    g = json.loads((out / "golden" / "golden.json").read_text())
    names = {"x", "y", "z", "z_hat", "hyper", "y_hat", "x_hat"} | {
        f"slice_{k:02d}.{p}" for k in range(meta["levels"]) for p in ("mean", "scale")}
    assert names <= set(g)
    assert g["x"]["shape"] == [1, 3, 64, 64]
    for v in g.values():
        n = (out / "golden" / v["file"]).stat().st_size
        assert n == 4 * int(np.prod(v["shape"]))


@pytest.mark.skipif(not (BUNDLE / "model.json").exists(), reason="no committed bundle")
def test_committed_bundle():
    errs = verify_bundle(BUNDLE, verbose=False)
    assert max(errs.values()) <= TOL, errs
    total = sum(p.stat().st_size for p in BUNDLE.glob("*.onnx"))
    assert total < 16e6   # kernels in float16 (docs/model.md); float32 would be 29 MB


def test_restore_round_trip(exported):
    """A bundle gives back the exact network weights and a z density that reproduces its tables."""
    from training.entropy import z_tables
    from training.restore import checkpoint_from_bundle
    model, out, meta = exported
    ck = checkpoint_from_bundle(out, fit_iters=1500, verbose=False)
    ref = model.state_dict()
    for k, v in ck["model"].items():
        if not k.startswith("density_z."):
            assert torch.allclose(v, ref[k], rtol=1e-5, atol=1e-6), k
    back = SICLite(ModelConfig.from_dict(ck["config"]))
    back.load_state_dict(ck["model"])
    assert verify_against_torch(back, out, verbose=False) <= TOL
    assert ck["restored_from"]["z_fit_kl_bits_max"] < 1e-2
    # medians set the quantisation grid of z; the far tails (below 2^-16) are not recoverable
    for got, want in zip(z_tables(back.density_z), meta["entropy"]["z"]):
        assert abs(got["median"] - want["median"]) < 0.02


def test_restore_rejects_a_foreign_graph(exported, tmp_path):
    import shutil
    from training.restore import BundleError, checkpoint_from_bundle
    _, out, _ = exported
    bad = tmp_path / "bad"
    shutil.copytree(out, bad)
    shutil.copy(bad / "synthesis.onnx", bad / "analysis.onnx")
    with pytest.raises(BundleError):
        checkpoint_from_bundle(bad, fit_iters=10, verbose=False)
    shutil.copy(out / "analysis.onnx", bad / "analysis.onnx")
    meta = json.loads((out / "model.json").read_text())
    del meta["entropy"]["z"]
    (bad / "model.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="model.json"):
        checkpoint_from_bundle(bad, fit_iters=10, verbose=False)


def test_kernels_are_stored_as_float16(exported):
    """Kernels ship in float16 behind a Cast, holding exactly the weights the model was
    rounded to; everything else in the graph stays float32."""
    import onnx
    from onnx import TensorProto, numpy_helper
    model, out, _ = exported
    g = onnx.load(str(out / "analysis.onnx")).graph
    kernels = {t.name: t for t in g.initializer if len(t.dims) == 4}
    assert kernels and {t.data_type for t in kernels.values()} == {TensorProto.FLOAT16}
    assert all(t.data_type == TensorProto.FLOAT for t in g.initializer if len(t.dims) != 4)
    readers = [n for n in g.node for i in n.input if i in kernels]
    assert readers and all(n.op_type == "Cast" for n in readers)
    stored = numpy_helper.to_array(kernels["m.g_a.0.weight"]).astype(np.float32)
    assert np.array_equal(stored, model.g_a[0].weight.detach().numpy())


def test_export_refuses_a_kernel_float16_would_change():
    from onnx import helper, numpy_helper
    from training.export import _store_kernels_as_float16
    w = numpy_helper.from_array(np.full((1, 1, 1, 1), 1 / 3, dtype=np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"])
    graph = helper.make_graph([node], "g", [], [], initializer=[w])
    with pytest.raises(ValueError, match="float16-exact"):
        _store_kernels_as_float16(graph)
    graph.initializer[0].CopyFrom(numpy_helper.from_array(np.full((1, 1, 1, 1), 0.25,
                                                                  dtype=np.float32), "w"))
    _store_kernels_as_float16(graph)
    assert [n.op_type for n in graph.node] == ["Cast", "Conv"]
    assert graph.node[1].input[1] == "w.f32"


@pytest.fixture(scope="module")
def modulated(tmp_path_factory, photo):
    """A model with a level modulation, its tables random (a zero one would test nothing)."""
    torch.manual_seed(4)
    model = SICLite(ModelConfig(level_modulation=True)).eval()
    with torch.no_grad():
        model.level_modulation.scale.normal_(0, 0.2)
        model.level_modulation.shift.normal_(0, 0.2)
    out = tmp_path_factory.mktemp("modulated")
    meta = export_bundle(model, out, {"steps": 0}, golden_photo=photo)
    return model, out, meta


def test_level_modulation_in_the_graph(modulated):
    """The synthesis graph takes the level: each level below L is its own modulation, the top
    level (and anything above) is plain g_s, and levels below 1 clamp to level 1."""
    from training.export import _session
    model, out, meta = modulated
    assert meta["synthesis_inputs"] == ["y_hat", "level"]
    errs = verify_bundle(out, verbose=False)
    assert "synthesis.x_hat_level" in errs and max(errs.values()) <= TOL, errs
    assert verify_against_torch(model, out, verbose=False) <= TOL
    y = torch.randn(1, meta["M"], 3, 5, generator=torch.Generator().manual_seed(6))
    run = _session(out / "synthesis.onnx")

    def graph(level):
        return run.run(None, {"y_hat": y.numpy(), "level": np.array([level], np.float32)})[0]

    L = meta["levels"]
    with torch.no_grad():
        want = {lv: model.synthesize(y, lv).numpy() for lv in range(1, L + 1)}
        plain = model.g_s(y).numpy()
    for lv in range(1, L + 1):
        assert np.abs(graph(lv) - want[lv]).max() <= TOL, lv
    assert np.abs(want[L] - plain).max() == 0
    assert np.abs(want[1] - plain).max() > 1e-2 and np.abs(want[2] - want[1]).max() > 1e-2
    assert np.abs(graph(L + 3) - plain).max() <= TOL
    assert np.abs(graph(0) - want[1]).max() <= TOL


@pytest.fixture(scope="module")
def adapted(tmp_path_factory, photo):
    """A model with a level modulation and a level adapter, all random."""
    torch.manual_seed(8)
    model = SICLite(ModelConfig(level_modulation=True, level_adapter=8)).eval()
    with torch.no_grad():
        for prm in model.level_modulation.parameters():
            prm.normal_(0, 0.05)
    out = tmp_path_factory.mktemp("adapted")
    meta = export_bundle(model, out, {"steps": 0}, golden_photo=photo)
    return model, out, meta


def test_level_adapter_in_the_graph_and_back(adapted):
    """The graph runs the adapter at every level below L (and not at L), matches the model,
    and restoring the bundle gives back every weight of it exactly."""
    from training.export import _session
    from training.restore import checkpoint_from_bundle
    model, out, meta = adapted
    assert meta["architecture"]["level_adapter"] == 8
    assert verify_against_torch(model, out, verbose=False) <= TOL
    y = torch.randn(1, meta["M"], 3, 5, generator=torch.Generator().manual_seed(9))
    run = _session(out / "synthesis.onnx")
    L = meta["levels"]
    plain = SICLite(dataclasses.replace(model.cfg, level_adapter=0)).eval()
    plain.load_state_dict(model.state_dict(), strict=False)   # the same model without adapter
    with torch.no_grad():
        for lv in (1, 4, L):
            want = model.synthesize(y, lv)
            got = run.run(None, {"y_hat": y.numpy(), "level": np.array([lv], np.float32)})[0]
            assert np.abs(got - want.numpy()).max() <= TOL, lv
            adapter_effect = (want - plain.synthesize(y, lv)).abs().max()
            assert (adapter_effect > 1e-3) == (lv < L), lv
    ck = checkpoint_from_bundle(out, fit_iters=10, verbose=False)
    assert ck["config"]["level_adapter"] == 8
    keys = [k for k in model.state_dict() if k.startswith("level_modulation.adapter.")]
    assert len(keys) == 3 * 5
    for k in keys:
        assert torch.equal(ck["model"][k], model.state_dict()[k]), k


def test_zero_modulation_is_plain_synthesis():
    torch.manual_seed(5)
    model = SICLite(ModelConfig(N=16, M=32, Nh=16, Cz=8, Ch=16, slice_widths=(8, 8, 16),
                                slice_hidden=16, level_modulation=True)).eval()
    y = torch.randn(1, 32, 2, 3)
    adapted = SICLite(dataclasses.replace(model.cfg, level_adapter=4)).eval()
    adapted.load_state_dict(model.state_dict(), strict=False)
    with torch.no_grad():
        for lv in (1, 2, 3):
            assert torch.equal(model.synthesize(y, lv), model.g_s(y))
            # a new adapter starts as nothing: its last convolution is zero
            assert torch.equal(adapted.synthesize(y, lv), model.g_s(y))


def test_restore_round_trip_with_level_modulation(modulated):
    from training.restore import checkpoint_from_bundle
    model, out, _ = modulated
    ck = checkpoint_from_bundle(out, fit_iters=10, verbose=False)
    assert ck["config"]["level_modulation"] is True
    for k in ("level_modulation.scale", "level_modulation.shift"):
        assert torch.equal(ck["model"][k], model.state_dict()[k]), k
