"""DISTS (training.dists): the evaluation metric, and the training term of --dists-weight."""

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from .test_lpips import pair  # noqa: E402


@pytest.fixture(scope="module")
def ds():
    from training.dists import DISTS
    try:
        return DISTS()
    except Exception as e:  # no registry reachable and nothing cached
        pytest.skip(f"DISTS weights unavailable: {e}")


def test_identity_symmetry_reference(ds):
    x, y = pair()
    assert float(ds(x, x)) == pytest.approx(0.0, abs=1e-6)
    assert float(ds(x, y)) == pytest.approx(float(ds(y, x)), abs=1e-6)
    # Computed once with the converted VGG16 and the dists-pytorch alpha/beta (torch 2.x, CPU);
    # a wrong conversion or a max pool left in place moves them far away.
    assert float(ds(x, y)) == pytest.approx(0.28607, abs=2e-4)
    assert float(ds(x, x.flip(3))) == pytest.approx(0.26740, abs=2e-4)


def test_distance_is_differentiable_and_descends(ds):
    """The training term: the same value as the metric, a gradient in the reconstruction, and
    a small step against that gradient brings the reconstruction closer."""
    x, y = pair()
    with torch.no_grad():
        fx = ds.features(x)
    b = y.clone().requires_grad_(True)
    d = ds.distance(x, b, fx)
    assert float(d.detach()) == pytest.approx(float(ds(x, y)), abs=1e-6)
    d.sum().backward()
    assert b.grad is not None and torch.isfinite(b.grad).all() and b.grad.abs().sum() > 0
    with torch.no_grad():
        closer = (y - 0.2 * b.grad / b.grad.abs().max()).clamp(0, 1)
    assert float(ds(x, closer)) < float(d.detach())


def test_loss_adds_the_weighted_dists_term(ds):
    """--dists-weight W adds 0.5 * lambda_p * W * DISTS for each of the two pictures, and
    nothing else changes."""
    from training.config import ModelConfig
    from training.model import SICLite
    from training.train import lambdas, loss_terms
    from .test_model import _args
    m = SICLite(ModelConfig()).eval()
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    level, L = 3, m.cfg.levels
    out = {}
    for w in (0.0, 2.0):
        torch.manual_seed(5)
        with torch.no_grad():
            out[w] = loss_terms(m, None, x, level, _args(dists_weight=w), ds)
    (l0, p0), (l2, p2) = out[0.0], out[2.0]
    assert float(p2["dists_full"]) > 0 and float(p2["dists_l"]) > 0
    assert float(p0["mse_l"]) == float(p2["mse_l"]) and float(p0["bpp_l"]) == float(p2["bpp_l"])
    pL, pl = lambdas(L, L, _args())[1], lambdas(level, L, _args())[1]
    want = 0.5 * 2.0 * (pL * float(p2["dists_full"]) + pl * float(p2["dists_l"]))
    assert float(l2) - float(l0) == pytest.approx(want, rel=1e-4)
