"""Entropy-model tuning on cached latents: what it may change, its bit count, resuming."""

import argparse

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from training.__main__ import main  # noqa: E402
from training.config import ModelConfig  # noqa: E402
from training.entropy_tune import add_tune_args, level_bits  # noqa: E402
from training.model import SICLite  # noqa: E402

TINY = ModelConfig(N=8, M=16, Nh=8, Cz=4, Ch=8, slice_widths=(2,) * 8, slice_hidden=8)


def test_level_bits_match_the_coded_symbols():
    """Without a margin, the last level's bits equal model.code's estimate of the same latent
    (rounding around the mean, the z density's own medians)."""
    torch.manual_seed(1)
    model = SICLite(TINY).eval()
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        y, _ = model.analysis(x)
        bits = level_bits(model, y)
        _, bpp = model.code(x, TINY.levels)
    assert bits.shape == (TINY.levels, 1)
    assert torch.all(bits[1:] >= bits[:-1])
    assert float(bits[-1, 0]) / (128 * 128) == pytest.approx(bpp, rel=1e-4)


def test_margin_counts_only_the_interior():
    torch.manual_seed(2)
    model = SICLite(TINY).eval()
    y = 3 * torch.randn(2, TINY.M, 16, 16)
    with torch.no_grad():
        full = level_bits(model, y)
        inner = level_bits(model, y, margin=4)
    assert torch.all(inner < full) and torch.all(inner > 0)


def _args(argv):
    p = argparse.ArgumentParser()
    add_tune_args(p)
    return p.parse_args(argv)


@pytest.fixture()
def photos(tmp_path, monkeypatch):
    from PIL import Image
    monkeypatch.setenv("SIC_WORK", str(tmp_path / "work"))
    folder = tmp_path / "train"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(2):
        a = rng.integers(0, 256, (320, 384, 3), dtype=np.uint8)
        Image.fromarray(a).save(folder / f"pkg__photo{i}.png")
    torch.manual_seed(3)
    ckpt = tmp_path / "tiny.pt"
    torch.save({"config": TINY.to_dict(), "model": SICLite(TINY).state_dict(), "step": 7,
                "wall_time_s": 1.0, "history": [{"from_step": 0, "train_part": "all"}],
                "training": {"steps": 7}}, ckpt)
    return folder, ckpt


def test_tune_changes_only_the_entropy_model_and_resumes(photos, capsys):
    folder, ckpt = photos
    before = torch.load(ckpt, weights_only=False)["model"]
    common = ["--ckpt", str(ckpt), "--data", str(folder), "--window", "12", "--margin", "4",
              "--batch", "2", "--scales", "1", "--lr", "1e-3", "--log-every", "1"]
    main(["tune-entropy", "--steps", "3"] + common)
    ck = torch.load(ckpt, weights_only=False)
    after = ck["model"]
    for name, t in before.items():
        same = torch.equal(t, after[name])
        if name.startswith(("g_a.", "g_s.")):
            assert same, name
    assert not all(torch.equal(t, after[n]) for n, t in before.items() if n.startswith("slices."))
    assert ck["step"] == 7 and ck["entropy_steps"] == 3
    assert ck["training"]["entropy_steps"] == 3
    assert ck["history"][-1]["train_part"] == "entropy"
    assert "cached the latents of 2 photos" in capsys.readouterr().out
    # a second run goes on from step 3 with the saved Adam moments, reference sizes and latents
    main(["tune-entropy", "--steps", "5"] + common)
    assert "latents from" in capsys.readouterr().out
    ck2 = torch.load(ckpt, weights_only=False)
    assert ck2["entropy_steps"] == 5
    assert ck2["history"][-1]["from_entropy_step"] == 3
    assert ck2["entropy_reference"] == ck["entropy_reference"]
    assert len(ck2["history"]) == 3
    # another part trains other parameters: its Adam starts afresh instead of failing
    main(["tune-entropy", "--steps", "6", "--part", "scales"] + common)
    assert torch.load(ckpt, weights_only=False)["entropy_steps"] == 6


@pytest.mark.parametrize("argv, msg", [
    (["--window", "10"], "--window"),
    (["--window", "16", "--margin", "8"], "--margin"),
    (["--scales", "1,2"], "--scales"),
])
def test_bad_options_fail_before_loading(tmp_path, argv, msg):
    from training.entropy_tune import tune
    a = _args(["--ckpt", str(tmp_path / "none.pt")] + argv)
    with pytest.raises(SystemExit, match=msg):
        tune(a)


def test_missing_checkpoint_names_the_fix(tmp_path):
    from training.entropy_tune import tune
    with pytest.raises(SystemExit, match="restore"):
        tune(_args(["--ckpt", str(tmp_path / "none.pt")]))


def test_scales_part_leaves_every_mean_alone(photos):
    """--part scales: h_a, h_s and the mean half of each slice network stay as they were, so
    the decoded pixels cannot change; the scale half and the z density move."""
    folder, ckpt = photos
    before = torch.load(ckpt, weights_only=False)["model"]
    main(["tune-entropy", "--part", "scales", "--steps", "3", "--ckpt", str(ckpt), "--data",
          str(folder), "--window", "12", "--margin", "4", "--batch", "2", "--scales", "1",
          "--lr", "1e-3", "--log-every", "1"])
    ck = torch.load(ckpt, weights_only=False)
    after = ck["model"]
    half = TINY.slice_widths[0]
    moved = set()
    for name, t in before.items():
        if name.startswith(("g_a.", "g_s.", "h_a.", "h_s.")) or (
                name.startswith("slices.") and not name.startswith(
                    tuple(f"slices.{k}.net.4." for k in range(TINY.levels)))):
            assert torch.equal(t, after[name]), name
        elif name.startswith("slices."):   # the last layer: means first, then raw scales
            assert torch.equal(t[:half], after[name][:half]), name
            if not torch.equal(t[half:], after[name][half:]):
                moved.add("scales")
        elif not torch.equal(t, after[name]):
            moved.add("density")
    assert moved == {"scales", "density"}
    assert ck["history"][-1]["part"] == "scales"
