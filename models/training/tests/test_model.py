"""Shapes, tables, loss finiteness and resumable training of SIC-lite."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training.config import ModelConfig  # noqa: E402
from training.entropy import quantize_pmf, y_scale_table, y_tables, z_tables  # noqa: E402
from training.model import SICLite, pad_to, rd_round  # noqa: E402


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SICLite(ModelConfig()).eval()


@pytest.mark.parametrize("hw", [(64, 64), (128, 192)])
def test_shapes(model, hw):
    H, W = hw
    cfg = model.cfg
    x = torch.rand(1, 3, H, W)
    with torch.no_grad():
        y, z = model.analysis(x)
        assert y.shape == (1, cfg.M, H // 16, W // 16)
        assert z.shape == (1, cfg.Cz, H // 64, W // 64)
        hyper = model.h_s(torch.round(z))
        assert hyper.shape == (1, cfg.Ch, H // 16, W // 16)
        for k, o in enumerate(cfg.offsets()):
            mean, scale = model.slice_params(k, hyper, y)
            assert mean.shape == scale.shape == (1, cfg.slice_widths[k], H // 16, W // 16)
            assert float(scale.min()) >= cfg.scale_min - 1e-6
        assert model.g_s(y).shape == (1, 3, H, W)


def test_pad_repeats_last_row_and_column():
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).view(2, 3, 5, 7)
    p = pad_to(x, 64)
    assert p.shape == (2, 3, 64, 64)
    assert torch.equal(p[:, :, :5, :7], x)
    assert torch.equal(p[:, :, 4, 7:], x[:, :, 4, 6:7].expand(2, 3, 57))
    assert torch.equal(p[:, :, 63, :7], x[:, :, 4, :])


@pytest.mark.parametrize("pmf", [[1.0], [0.5, 0.5], [1e-30, 1.0, 1e-30], list(np.linspace(0, 1, 999))])
def test_quantize_pmf(pmf):
    f = quantize_pmf(pmf, 16)
    assert sum(f) == 1 << 16 and min(f) >= 1 and len(f) == len(pmf)


def test_y_and_z_tables(model):
    scales = y_scale_table()
    assert scales[0] == pytest.approx(0.11) and scales[-1] == 64.0
    assert all(a < b for a, b in zip(scales, scales[1:]))
    for t in y_tables(scales):
        assert sum(t["freqs"]) == 1 << 16 and min(t["freqs"]) >= 1
        assert t["min"] == -(len(t["freqs"]) // 2) and len(t["freqs"]) <= 801
    zt = z_tables(model.density_z)
    assert len(zt) == model.cfg.Cz
    med = model.density_z.medians()
    for c, t in enumerate(zt):
        assert sum(t["freqs"]) == 1 << 16 and min(t["freqs"]) >= 1
        assert t["min"] < 0 < t["min"] + len(t["freqs"]) - 1
        assert t["median"] == pytest.approx(float(med[c]), abs=1e-3)


def test_synonymous_fill_is_seeded_and_sequential(model):
    with torch.no_grad():
        x = torch.rand(1, 3, 64, 64)
        y, z = model.analysis(x)
        hyper = model.h_s(torch.round(z))
        a = model.fill_untransmitted(hyper, y, 3, "uniform", torch.Generator().manual_seed(5))
        b = model.fill_untransmitted(hyper, y, 3, "uniform", torch.Generator().manual_seed(5))
        m = model.fill_untransmitted(hyper, y, 3, "mean")
    o, w = model.cfg.offsets()[3], model.cfg.slice_widths[3]
    assert torch.equal(a, b)
    assert torch.equal(a[:, :o], y[:, :o]) and torch.equal(m[:, :o], y[:, :o])
    d = (a - m)[:, o:o + w]         # first sampled slice: same conditioning -> integer offsets
    assert torch.allclose(d, torch.round(d), atol=1e-4) and float(d.abs().max()) <= 2


def test_gaussian_fill_scales_with_its_temperature(model):
    with torch.no_grad():
        x = torch.rand(1, 3, 64, 64)
        y, z = model.analysis(x)
        hyper = model.h_s(torch.round(z))
        m = model.fill_untransmitted(hyper, y, 3, "mean")
        zero = model.fill_untransmitted(hyper, y, 3, "gauss0", torch.Generator().manual_seed(2))
        half = model.fill_untransmitted(hyper, y, 3, "gauss0.5", torch.Generator().manual_seed(2))
        one = model.fill_untransmitted(hyper, y, 3, "gauss1", torch.Generator().manual_seed(2))
        _, scale = model.slices[3](hyper, y[:, :model.cfg.offsets()[3]])
    o, w = model.cfg.offsets()[3], model.cfg.slice_widths[3]
    assert torch.equal(zero, m)
    # first drawn slice: same conditioning, so the offsets are T * scale * the same normals
    d1, d5 = (one - m)[:, o:o + w], (half - m)[:, o:o + w]
    assert torch.allclose(d5, d1 / 2, atol=1e-5) and float(d1.abs().max()) > 0
    n = d1 / scale
    assert 0.8 < float(n.std()) < 1.2
    with pytest.raises(ValueError):
        model.fill_untransmitted(hyper, y, 3, "gaussian")


def _args(**kw):
    import argparse
    from training.train import add_train_args
    p = argparse.ArgumentParser()
    add_train_args(p)
    return p.parse_args([f"--{k.replace('_', '-')}={v}" for k, v in kw.items()])


@pytest.mark.parametrize("level", [1, 5, 8])
def test_loss_finite_and_backward(level):
    from training.train import loss_terms
    torch.manual_seed(1)
    m = SICLite(ModelConfig()).train()
    x = torch.rand(2, 3, 64, 64)
    loss, parts = loss_terms(m, None, x, level, _args())
    loss.backward()
    assert math.isfinite(loss.item()) and all(math.isfinite(v) for v in parts.values())
    assert parts["bpp_l"] <= parts["bpp_full"] + 1e-6
    g = [p.grad for p in m.parameters() if p.grad is not None]
    assert g and all(torch.isfinite(t).all() for t in g)


def test_consistency_pass_only_when_weighted():
    """--lambda-c 0 leaves out the re-encoding pass of g_a; the other terms are the same."""
    from training.train import loss_terms
    m = SICLite(ModelConfig()).eval()
    calls = []
    m.g_a.register_forward_hook(lambda *_: calls.append(1))
    x = torch.rand(1, 3, 64, 64)
    out = {}
    for c in (0.1, 0):
        calls.clear()
        torch.manual_seed(2)
        _, out[c] = loss_terms(m, None, x, 4, _args(lambda_c=c))
        assert len(calls) == (2 if c else 1)
    assert out[0]["cons"] == 0 and out[0.1]["cons"] > 0
    for k in ("mse_full", "mse_l", "bpp_full", "bpp_l"):
        assert torch.equal(out[0][k], out[0.1][k])


def test_lambda_schedule():
    from training.train import lambdas, level_for_step
    assert lambdas(8, 8) == (2048.0, 8.0, 1.0)            # paper level 16
    d, p, r = lambdas(1, 8)                                 # paper level 2
    assert (d, p, r) == (256.0, 2 ** 4.75, 2 ** 5.25)
    assert [level_for_step(s, 8) for s in range(9)] == [8, 7, 6, 5, 4, 3, 2, 1, 8]


def _tiny_run(tmp_path, monkeypatch, seed, photos=1):
    """Two steps of a new small run on `photos` random 80x96 pictures; returns the arguments
    (to go on with) and the checkpoint path."""
    from PIL import Image
    from training.train import train
    monkeypatch.setenv("SIC_WORK", str(tmp_path))
    data = tmp_path / "imgs"
    data.mkdir()
    rng = np.random.default_rng(seed)
    for i in range(photos):
        Image.fromarray(rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)).save(data / f"{i}.png")
    ck = tmp_path / "ck.pt"
    a = _args(steps=2, save_every=100)
    for k, v in dict(ckpt=ck, data=data, batch=2, crop=64, no_lpips=True, log_every=1,
                     from_scratch=True).items():
        setattr(a, k, v)
    train(a)
    return a, ck


def test_train_resume(tmp_path, monkeypatch):
    from training.train import train
    a, ck = _tiny_run(tmp_path, monkeypatch, seed=0, photos=2)
    assert torch.load(ck, weights_only=False)["step"] == 2
    a.steps = 3
    train(a)
    c = torch.load(ck, weights_only=False)
    assert c["step"] == 3 and c["training"]["steps"] == 3


def test_synthesis_only_run_keeps_the_bitstream(tmp_path, monkeypatch):
    """--train-part synthesis moves g_s alone: every encoder/entropy weight stays bit-identical."""
    from training.train import train
    a, ck = _tiny_run(tmp_path, monkeypatch, seed=1)
    before = torch.load(ck, weights_only=False)["model"]
    a.steps, a.train_part = 4, "synthesis"
    train(a)
    c = torch.load(ck, weights_only=False)
    moved = {k for k, v in c["model"].items() if not torch.equal(v, before[k])}
    assert moved and all(k.startswith("g_s.") for k in moved)
    assert c["history"][-1]["train_part"] == "synthesis"
    assert "Adam restarted" in c["history"][-1]["resumed"]


def test_run_options():
    from training.train import new_config, parse_lr_drops
    assert parse_lr_drops("7.2:2e-5, 5.6:1e-4") == [(5.6, 1e-4), (7.2, 2e-5)]
    assert parse_lr_drops("") == []
    cfg = new_config(_args(N=32, slice_widths="8,8,16"))
    assert (cfg.N, cfg.M, cfg.levels, cfg.offsets()) == (32, 32, 3, [0, 8, 16])
    assert new_config(_args()) == ModelConfig()


def test_level_term_fill_modes():
    """Mean filling is deterministic; uniform filling moves the untransmitted slices."""
    torch.manual_seed(3)
    m = SICLite(ModelConfig(N=16, M=32, Nh=16, Cz=8, Ch=16, slice_widths=(8, 8, 16),
                            slice_hidden=16)).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.manual_seed(0)
        a = m(x, 1, "mean")
        torch.manual_seed(0)
        b = m(x, 1, "mean")
        torch.manual_seed(0)
        u = m(x, 1, "uniform")
    # the training forward adds uniform noise to z and y: same seed, same result
    assert torch.equal(a["x_level"], b["x_level"])
    assert not torch.equal(a["x_level"], u["x_level"])
    assert torch.equal(a["x_full"], u["x_full"])


@pytest.mark.parametrize("k", [3, 5])
def test_subpixel_conv_equals_transposed_conv(k):
    """The exported synthesis graphs compute each deconv as conv + depth-to-space."""
    from training.layers import SubPixelConv, deconv
    torch.manual_seed(k)
    t = deconv(6, 5, k)
    x = torch.randn(2, 6, 7, 9)
    with torch.no_grad():
        a, b = t(x), SubPixelConv(t)(x)
    assert a.shape == b.shape == (2, 5, 14, 18)
    assert float((a - b).abs().max()) < 1e-5


def test_devices_of_lists_every_training_device_once():
    from training.train import devices_of
    runs = [{"device": "cuda (NVIDIA H200)"}, {"device": "cuda (NVIDIA H200)"}, {"device": "cpu"}]
    assert devices_of(runs) == "cuda (NVIDIA H200) + cpu"
    assert devices_of([]) == ""


def test_bf16_transform_keeps_names_and_float32_ends(model):
    """--bf16 changes how g_a/g_s compute, not what they are: same parameter names (checkpoints
    and export unaffected), float32 outputs, close to the float32 result, off by default."""
    assert not model.g_a.inner_bf16 and not model.g_s.inner_bf16
    names = [n for n, _ in model.named_parameters()]
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        y32, x32 = model.g_a(x), model.g_s(model.g_a(x))
        model.g_a.inner_bf16 = model.g_s.inner_bf16 = True
        try:
            y16, x16 = model.g_a(x), model.g_s(model.g_a(x))
        finally:
            model.g_a.inner_bf16 = model.g_s.inner_bf16 = False
    assert [n for n, _ in model.named_parameters()] == names
    assert y16.dtype == x16.dtype == torch.float32
    assert not torch.equal(y16, y32)  # bfloat16 really ran
    assert float((y16 - y32).abs().max()) < 0.05 * float(y32.abs().max()) + 1e-3
    assert float((x16 - x32).abs().max()) < 0.05 * float(x32.abs().max()) + 1e-3


def test_rd_round_trades_error_for_bits(model):
    r = torch.tensor([0.4, 0.6, -0.6, 0.9, 2.6, -1.5])
    scale = torch.full_like(r, 1.0)
    assert torch.equal(rd_round(r, scale, 0.0), torch.round(r))
    q = rd_round(r, scale, 0.5)   # 1 costs 0.66 bit more than 0 at scale 1
    # always one of the two neighbours, never further from the mean than rounding
    assert torch.all((q == torch.floor(r)) | (q == torch.floor(r) + 1))
    assert torch.all(q.abs() <= torch.round(r).abs())
    assert q[1] == 0 and q[2] == 0 and q[3] == 1
    # level 1 (one slice, whose parameters depend on z only): never more bits than rounding
    x = torch.rand(1, 3, 64, 128, generator=torch.Generator().manual_seed(3))
    zt = z_tables(model.density_z)
    _, b0 = model.code(x, 1, "mean", None, zt)
    _, b1 = model.code(x, 1, "mean", None, zt, rdo_lambda=0.1)
    assert b1 <= b0


def test_modulation_only_run(tmp_path, monkeypatch):
    """--level-modulation adds a zero modulation to a checkpoint without one; --train-part
    modulation then moves its tables alone, at --modulation-lr-scale times the rate."""
    from training.train import train
    a, ck = _tiny_run(tmp_path, monkeypatch, seed=2)
    before = torch.load(ck, weights_only=False)["model"]
    assert not any(k.startswith("level_modulation.") for k in before)
    a.steps, a.train_part, a.level_modulation = 10, "modulation", True
    train(a)
    c = torch.load(ck, weights_only=False)
    assert c["config"]["level_modulation"] is True
    moved = {k for k, v in c["model"].items() if k not in before or not torch.equal(v, before[k])}
    assert moved == {"level_modulation.scale", "level_modulation.shift"}
    assert c["model"]["level_modulation.scale"].abs().max() > 0
    assert "level modulation added" in c["history"][-1]["resumed"]
    # the next run goes on with the modulation and its Adam state, the flag no longer needed
    a.steps, a.level_modulation = 11, False
    train(a)
    assert "resumed" not in torch.load(ck, weights_only=False)["history"][-1]
    # --level-adapter adds a zero adapter to it, and the same part trains both
    a.steps, a.level_adapter = 15, 4
    train(a)
    d = torch.load(ck, weights_only=False)
    assert d["config"]["level_adapter"] == 4 and "level adapter" in d["history"][-1]["resumed"]
    moved = {k for k, v in d["model"].items()
             if k not in c["model"] or not torch.equal(v, c["model"][k])}
    assert {k.split(".")[1] for k in moved} == {"scale", "shift", "adapter"}
    assert d["model"]["level_modulation.adapter.2.up.weight"].abs().max() > 0
    a.level_adapter = 8
    with pytest.raises(SystemExit, match="width 4"):
        train(a)
