import subprocess

from evaluation.report import source_state


def git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_source_state_ignores_the_tools_own_outputs(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "results.md").write_text("old\n")
    (tmp_path / "code.py").write_text("x = 1\n")
    git(tmp_path, "add", ".")
    git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "c")
    clean = source_state(tmp_path)
    assert clean["dirty"] is False and len(clean["commit"]) >= 7
    (tmp_path / "docs" / "results.md").write_text("regenerated\n")
    assert source_state(tmp_path)["dirty"] is False
    (tmp_path / "code.py").write_text("x = 2\n")
    assert source_state(tmp_path)["dirty"] is True


def _points(codec, image, rates, quality):
    """Points of one codec on one photo; quality rises with rate (LPIPS/DISTS fall)."""
    return [{"image": image, "codec": codec, "setting": f"s={i}", "order": i, "bpp": b,
             "psnr": 20 + q, "msssim": 1 - 0.1 / (1 + q), "lpips": 0.5 / (1 + q),
             "dists": 0.4 / (1 + q)} for i, (b, q) in enumerate(zip(rates, quality))]


def test_per_photo_bd_rate_reads_each_photos_own_curve():
    from evaluation.report import SIC_MEAN, per_image_markdown
    q = [1.0, 2.0, 3.0, 4.0, 5.0]
    rates = [0.1, 0.2, 0.4, 0.8, 1.6]
    rows = (_points("WebP", "a", rates, q) + _points(SIC_MEAN, "a", [r / 2 for r in rates], q)
            + _points("WebP", "b", rates, q) + _points(SIC_MEAN, "b", rates, q))
    md = per_image_markdown(rows)
    # photo a: SIC needs half WebP's rate at every quality in every metric; photo b: the same
    assert md.count("| a | -50.0 % |") == 3 and md.count("| b | +0.0 % |") == 3
    assert "**LPIPS-Alex**" in md and "| photo | WebP |" in md
