import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # models/

from evaluation import annexb, codecs, colour  # noqa: E402


def _photo_like(h=96, w=130, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([128 + 80 * np.sin(x / 9.0), 128 + 70 * np.cos(y / 7.0), 100 + x + y * 0.3],
                    axis=-1)
    return np.clip(base + rng.normal(0, 6, base.shape), 0, 255).astype(np.uint8)


def test_colour_round_trip_444_is_near_lossless():
    img = _photo_like(64, 80)
    back = colour.planes_to_rgb(colour.rgb_to_planes(img, "444"), 80, 64, "444")
    assert np.abs(back.astype(int) - img).max() <= 2
    assert abs(back.astype(float).mean() - img.astype(float).mean()) < 0.05


def test_colour_round_trip_420_unbiased():
    img = _photo_like(64, 80)
    back = colour.planes_to_rgb(colour.rgb_to_planes(img, "420"), 80, 64, "420")
    assert np.abs(back.astype(float).mean(axis=(0, 1)) - img.astype(float).mean(axis=(0, 1))).max() < 0.2


def test_pad_to():
    img = _photo_like(30, 45)
    p = colour.pad_to(img, 8)
    assert p.shape == (32, 48, 3)
    assert (p[:30, :45] == img).all() and (p[31, 47] == img[29, 44]).all()


def test_strip_sei():
    sps = b"\x67\x64\x00\x1f\xac"
    sei = b"\x06\x05\x10" + b"\xaa" * 16 + b"\x80"
    idr = b"\x65\x88\x84\x00\x33"
    stream = b"\x00\x00\x00\x01" + sps + b"\x00\x00\x01" + sei + b"\x00\x00\x00\x01" + idr
    out = annexb.strip_sei(stream, "h264")
    assert [annexb.nal_type(n, "h264") for n in annexb.split_nals(out)] == [7, 5]
    assert annexb.split_nals(out)[1] == idr


@pytest.mark.skipif(not shutil.which("opj_compress"), reason="libopenjp2-tools not installed")
def test_j2k_truncated_prefix_decodes_like_layer_limit(tmp_path):
    from PIL import Image
    img = _photo_like(128, 160)
    png = tmp_path / "in.png"
    Image.fromarray(img).save(png)
    rates = (240, 48, 16)
    pts = list(codecs.jpeg2000("t", img, png, tmp_path, rates))
    data = (tmp_path / "t.j2k").read_bytes()
    spans = codecs.j2k_layer_bytes(data, len(rates), 18)
    for n, ((counted, prefix), pt) in enumerate(zip(spans, pts), start=1):
        assert counted == pt.nbytes and counted < prefix + 2
        cut = tmp_path / f"cut{n}.j2k"
        sot = data.find(b"\xff\x90")            # one tile part: fix its length (Psot)
        head = bytearray(data[:prefix])
        head[sot + 6:sot + 10] = (prefix - sot).to_bytes(4, "big")
        cut.write_bytes(bytes(head) + b"\xff\xd9")
        out = tmp_path / f"cut{n}.png"
        subprocess.run(["opj_decompress", "-i", str(cut), "-o", str(out)], check=True,
                       capture_output=True)
        dec = np.asarray(Image.open(out).convert("RGB"))
        assert (dec == pt.recon).all(), f"layer {n}: truncated file decodes differently"
    assert [p.nbytes for p in pts] == sorted(p.nbytes for p in pts)


@pytest.mark.parametrize("lam, expect", [(None, None), (0.02, "rdo-lambda=0.02")])
def test_sic_passes_the_encoder_rate_term_only_when_asked(tmp_path, monkeypatch, lam, expect):
    rgb = _photo_like(32, 48)
    seen = []

    def fake_gst(pipeline, env=None, timeout=600):
        seen.append(pipeline)
        out = pipeline.rsplit("location=", 1)[1].split()[0]
        Path(out).write_bytes(b"x" * 10)

    monkeypatch.setattr(codecs, "gst", fake_gst)
    monkeypatch.setattr(codecs, "read_rgb", lambda p: rgb)
    pts = list(codecs.sic("p", rgb, tmp_path / "p.png", tmp_path, [1, 2], tmp_path, tmp_path,
                          samplings=("mean",), rdo_lambda=lam))
    assert [p.setting for p in pts] == ["level=1", "level=2"]
    encodes = [s for s in seen if "sicenc" in s]
    assert len(encodes) == 2
    for s in encodes + [p.note for p in pts]:
        assert ("rdo-lambda" in s) == (expect is not None), s
        if expect:
            assert expect in s


def test_property_default_reads_gst_inspect(monkeypatch):
    text = ("  layers              : Most layers\n                        Unsigned Integer. Range: 0 - 8"
            " Default: 0 \n  rdo-lambda          : Rate term\n                        flags: readable\n"
            "                        Float. Range:               0 -               1 Default:"
            "            0.02 \n")
    monkeypatch.setattr(codecs.subprocess, "run",
                        lambda *a, **k: subprocess.CompletedProcess(a, 0, text, ""))
    assert codecs.property_default("sicenc", "rdo-lambda") == 0.02
    assert codecs.property_default("sicenc", "layers") == 0.0
    assert codecs.property_default("sicenc", "seed") is None
