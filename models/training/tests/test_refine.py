"""Encoder-side latent refinement (training/refine.py): the soft rounding and the optimiser."""

import pytest

torch = pytest.importorskip("torch")

from training.config import ModelConfig  # noqa: E402
from training.entropy import z_tables  # noqa: E402
from training.model import SICLite  # noqa: E402
from training.refine import refine_latent, sga_round  # noqa: E402

# small enough for a quick optimisation; the coding path is the shipped model's
SMALL = ModelConfig(N=16, M=32, Nh=8, Cz=4, Ch=8, slice_widths=(4,) * 8, slice_hidden=8)


def test_sga_round_stays_between_neighbours_and_hardens():
    g = torch.Generator().manual_seed(0)
    r = torch.linspace(-3.2, 3.2, 101).requires_grad_(True)
    q = sga_round(r, 0.5, g)
    assert torch.all(q >= torch.floor(r)) and torch.all(q <= torch.floor(r) + 1)
    q.sum().backward()
    assert r.grad is not None and torch.isfinite(r.grad).all() and r.grad.abs().sum() > 0
    # a residual 0.1 from an integer goes to it almost always once the temperature is low
    near = torch.tensor([2.1, -0.9, 0.05, 4.95]).repeat(200)
    assert torch.allclose(sga_round(near, 0.02, g), torch.round(near), atol=1e-3)


def test_code_latent_of_g_a_latent_is_code():
    torch.manual_seed(0)
    model = SICLite(ModelConfig()).eval()
    x = torch.rand(1, 3, 64, 96, generator=torch.Generator().manual_seed(1))
    zt = z_tables(model.density_z)
    with torch.no_grad():
        y, z = model.analysis(x)
        z_hat = model.quantise_z(z, zt)
        hyper = model.hyper(z_hat, y)
    for level in (1, 5, model.cfg.levels):
        a, ba = model.code(x, level, "mean", None, zt, 0.02)
        b, bb = model.code_latent(y, z_hat, hyper, level, "mean", None, 0.02)
        assert torch.equal(a, b) and ba == bb


def test_refinement_lowers_the_coded_objective():
    """A picture that g_s can make exactly, from a latent an untrained g_a does not find: the
    refined latent, coded with hard rounding as sicenc would, costs much less."""
    torch.manual_seed(0)
    model = SICLite(SMALL).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    L = model.cfg.levels
    y_star = torch.round(3 * torch.randn(1, SMALL.M, 4, 4, generator=torch.Generator().manual_seed(2)))
    with torch.no_grad():
        x = model.g_s(y_star)
        y0, z = model.analysis(x)
        z_hat = model.quantise_z(z)
        hyper = model.hyper(z_hat, y0)

    def weights(level):
        return 100.0 * level, 0.0, 1.0

    def coded(latent):
        total = 0.0
        for level in range(1, L + 1):
            x_hat, bpp = model.code_latent(latent, z_hat, hyper, level)
            d, _, r = weights(level)
            total += d * float(((x_hat - x) ** 2).mean()) + r * bpp
        return total / L

    assert torch.equal(refine_latent(model, y0, hyper, x, 0, weights), y0)
    y = refine_latent(model, y0, hyper, x, 15, weights, lr=0.2, levels_per_iter=L)
    before, after = coded(y0), coded(y)
    assert after < 0.8 * before, (before, after)


def test_compare_scales_real_bytes_by_the_bit_ratio():
    from training.refine import compare, rd_eval_name
    assert rd_eval_name("skimage_chelsea") == "chelsea"
    assert rd_eval_name("matplotlib_grace_hopper") == "grace_hopper"
    assert rd_eval_name("my_photo") == "my_photo"

    def point(bpp, q):
        return {"bpp": bpp, "psnr": 20 + 10 * q, "lpips": 0.5 / (1 + q), "dists": 0.4 / (1 + q)}
    levels, images = range(1, 6), ("a", "b")
    base = {(i, lv): point(0.1 * lv * (1 + n), lv) for n, i in enumerate(images) for lv in levels}
    test = {k: {**v, "bpp": 0.9 * v["bpp"]} for k, v in base.items()}
    test[("c", 1)] = point(1.0, 1)   # an image base lacks is left out
    real = {k: {**v, "bpp": 1.05 * v["bpp"]} for k, v in base.items()}
    anchor = {(i, f"q={s}"): point(0.15 * s * (1 + n), s * 0.9)
              for n, i in enumerate(images) for s in range(1, 7)}
    r = compare(base, test, {"SIC (mean)": real, "JPEG": anchor})
    assert r["images"] == ["a", "b"] and len(r["test"]) == 5
    for v in r["bd"].values():
        assert abs(v + 10.0) < 1e-6
    jpeg = r["anchors"]["JPEG"]
    for m in ("psnr", "lpips", "dists"):
        # the estimate from base reproduces the real bytes; the test's is 0.9 times it
        assert abs(jpeg["base est."][m] - jpeg["real bytes"][m]) < 1e-6
        assert abs((100 + jpeg["test est."][m]) - 0.9 * (100 + jpeg["base est."][m])) < 1e-6
