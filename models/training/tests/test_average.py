"""Weight averaging of checkpoints (python -m training average)."""

import pytest

torch = pytest.importorskip("torch")

from training.average import AverageError, average_checkpoints, parse_weighted  # noqa: E402


def _ckpt(path, step, value, config=None, history=None, half=False):
    w = torch.full((2, 3), float(value))
    torch.save({"config": config or {"M": 4}, "step": step, "wall_time_s": step * 10.0,
                "model": {"a.weight": w.half() if half else w,
                          "a.count": torch.tensor([7], dtype=torch.int64)},
                "optimizer": {"state": "moments"}, "history": history or [{"from_step": 0}],
                "training": {"steps": step, "runs": history or [{"from_step": 0}]}},
               path)
    return path


def test_the_weighted_mean_keeps_the_record_of_the_longest_run(tmp_path):
    a = _ckpt(tmp_path / "a.pt", 100, 1.0, history=[{"from_step": 0, "device": "cuda"}])
    b = _ckpt(tmp_path / "b.pt", 140, 4.0, half=True,
              history=[{"from_step": 0, "device": "cuda"}, {"from_step": 100, "device": "cpu"}])
    ck = average_checkpoints([(a, 2.0), (b, 1.0)])
    assert torch.allclose(ck["model"]["a.weight"], torch.full((2, 3), 2.0))
    assert ck["model"]["a.weight"].dtype == torch.float32
    assert torch.equal(ck["model"]["a.count"], torch.tensor([7]))
    assert ck["step"] == 140 and ck["wall_time_s"] == 1400.0 and "optimizer" not in ck
    assert [r.get("device") for r in ck["history"][:2]] == ["cuda", "cpu"]
    assert ck["training"]["runs"] == ck["history"] and ck["training"]["steps"] == 140
    assert ck["history"][-1] == {"from_step": 140, "averaged": [
        {"step": 100, "weight": 0.6667, "last_run_device": "cuda"},
        {"step": 140, "weight": 0.3333, "last_run_device": "cpu"}]}


def test_checkpoints_of_different_models_are_refused(tmp_path):
    a = _ckpt(tmp_path / "a.pt", 1, 0.0)
    b = _ckpt(tmp_path / "b.pt", 2, 0.0, config={"M": 8})
    with pytest.raises(AverageError, match="configuration"):
        average_checkpoints([(a, 1.0), (b, 1.0)])
    with pytest.raises(AverageError, match="at least two"):
        average_checkpoints([(a, 1.0)])
    with pytest.raises(AverageError, match="not found"):
        average_checkpoints([(a, 1.0), (tmp_path / "missing.pt", 1.0)])


def test_weights_are_parsed_after_the_last_colon():
    assert parse_weighted("/x/ck.pt") == (parse_weighted("/x/ck.pt:1")[0], 1.0)
    assert parse_weighted("ck.pt:2.5")[1] == 2.5
    for bad in ("ck.pt:two", "ck.pt:0", "ck.pt:-1"):
        with pytest.raises(AverageError, match="weight"):
            parse_weighted(bad)


def test_training_goes_on_from_an_average(tmp_path, monkeypatch):
    import argparse

    import numpy as np
    from PIL import Image
    from training.train import add_train_args, train
    monkeypatch.setenv("SIC_WORK", str(tmp_path))
    (tmp_path / "imgs").mkdir()
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (80, 96, 3), dtype=np.uint8)).save(
        tmp_path / "imgs" / "0.png")
    p = argparse.ArgumentParser()
    add_train_args(p)
    a = p.parse_args(["--ckpt", str(tmp_path / "run.pt"), "--data", str(tmp_path / "imgs"),
                      "--batch", "2", "--crop", "64", "--no-lpips", "--from-scratch",
                      "--steps", "1", "--log-every", "1"])
    train(a)
    early = tmp_path / "early.pt"
    early.write_bytes((tmp_path / "run.pt").read_bytes())
    a.steps = 2
    train(a)
    soup = average_checkpoints([(early, 1.0), (tmp_path / "run.pt", 1.0)])
    torch.save(soup, tmp_path / "soup.pt")
    a.ckpt, a.steps = tmp_path / "soup.pt", 3
    train(a)
    c = torch.load(tmp_path / "soup.pt", weights_only=False)
    assert c["step"] == 3 and "optimizer" in c
    assert [s["step"] for s in c["history"][-2]["averaged"]] == [1, 2]
    assert "averaged" in c["history"][-1]["resumed"]
