"""The codecs under test. Every classical codec except JPEG 2000 runs inside GStreamer
(`gst-launch-1.0`); JPEG 2000 runs through OpenJPEG's command line because GStreamer 1.22's
openjpegenc has no rate control. SIC runs through the project's own elements.

Each codec function takes (name, rgb, png_path, workdir, settings) and yields `Point`s:
the setting, the real byte count of the bitstream and the decoded RGB image."""

import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import annexb, colour
from .images import read_rgb


class CodecError(RuntimeError):
    pass


@dataclass
class Point:
    codec: str
    setting: str
    nbytes: int
    recon: np.ndarray
    note: str = ""


def gst(pipeline: str, env=None, timeout=600):
    cmd = ["gst-launch-1.0", "-q"] + shlex.split(pipeline)
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise CodecError(f"gst-launch-1.0 failed ({p.returncode}): {pipeline}\n"
                         f"{(p.stderr or p.stdout).strip()[-2000:]}")
    return p


def have_element(name: str, env=None) -> bool:
    p = subprocess.run(["gst-inspect-1.0", "--exists", name], env=env, capture_output=True)
    return p.returncode == 0


# ---------------------------------------------------------------- raw-plane helpers
def _raw_source(raw: Path, fmt: str, w: int, h: int) -> str:
    return (f"filesrc location={raw} ! rawvideoparse format={fmt} width={w} height={h} "
            f"framerate=25/1 colorimetry=1:4:0:0")


def _prepare_planes(rgb, workdir: Path, tag: str, chroma: str, multiple=8):
    padded = colour.pad_to(rgb, multiple)
    raw = workdir / f"{tag}.in.yuv"
    raw.write_bytes(colour.rgb_to_planes(padded, chroma))
    return raw, padded.shape[1], padded.shape[0]


def _read_planes(path: Path, w, h, chroma, crop_hw):
    rgb = colour.planes_to_rgb(path.read_bytes(), w, h, chroma)
    return np.ascontiguousarray(rgb[:crop_hw[0], :crop_hw[1]])


# ---------------------------------------------------------------- JPEG (jpegenc)
def jpeg(name, rgb, png, workdir: Path, settings):
    raw, w, h = _prepare_planes(rgb, workdir, f"{name}.jpeg", "420", 16)
    for q in settings:
        f = workdir / f"{name}.jpeg.q{q}.jpg"
        out = workdir / f"{name}.jpeg.q{q}.dec.yuv"
        gst(f"{_raw_source(raw, 'i420', w, h)} ! jpegenc quality={q} idct-method=islow ! filesink location={f}")
        gst(f"filesrc location={f} ! jpegdec idct-method=islow ! video/x-raw,format=I420 ! filesink location={out}")
        yield Point("JPEG", f"q={q}", f.stat().st_size,
                    _read_planes(out, w, h, "420", rgb.shape[:2]), "jpegenc, 4:2:0")


# ---------------------------------------------------------------- WebP (webpenc)
def webp(name, rgb, png, workdir: Path, settings):
    for q in settings:
        f = workdir / f"{name}.webp.q{q}.webp"
        out = workdir / f"{name}.webp.q{q}.png"
        # webpenc takes RGB directly; libwebp converts to its 4:2:0 YUV itself
        gst(f"filesrc location={png} ! pngdec ! video/x-raw,format=RGB ! "
            f"webpenc quality={q} preset=photo speed=6 ! filesink location={f}")
        gst(f"filesrc location={f} ! webpdec ! video/x-raw,format=RGB ! pngenc ! "
            f"filesink location={out}")
        yield Point("WebP", f"q={q}", f.stat().st_size, read_rgb(out), "webpenc, 4:2:0")


# ---------------------------------------------------------------- H.264 / HEVC intra (x264enc, x265enc)
def _video_intra(name, rgb, workdir: Path, settings, *, tag, codec, chroma, raw_format,
                 encoder, label, note):
    """One intra frame per QP through `encoder` (a format string with {qp}); bytes count the
    elementary stream with the encoder's SEI dropped, and that stripped stream is decoded."""
    raw, w, h = _prepare_planes(rgb, workdir, f"{name}.{tag}", chroma, 8)
    fmt = raw_format.upper()
    for qp in settings:
        f = workdir / f"{name}.{tag}.qp{qp}.{codec}"
        fs = workdir / f"{name}.{tag}.qp{qp}.nosei.{codec}"
        out = workdir / f"{name}.{tag}.qp{qp}.dec.yuv"
        gst(f"{_raw_source(raw, raw_format, w, h)} ! {encoder.format(qp=qp)} ! "
            f"video/x-{codec},stream-format=byte-stream,alignment=au ! filesink location={f}")
        fs.write_bytes(annexb.strip_sei(f.read_bytes(), codec))
        gst(f"filesrc location={fs} ! {codec}parse ! avdec_{codec} ! video/x-raw,format={fmt} ! "
            f"filesink location={out}")
        yield Point(label, f"qp={qp}", fs.stat().st_size,
                    _read_planes(out, w, h, chroma, rgb.shape[:2]), note)


def x264(name, rgb, png, workdir: Path, settings):
    yield from _video_intra(
        name, rgb, workdir, settings, tag="x264", codec="h264", chroma="420", raw_format="i420",
        encoder="x264enc pass=quant quantizer={qp} key-int-max=1 bframes=0 "
                "speed-preset=veryslow tune=stillimage",
        label="H.264 intra (x264)", note="x264enc High, 4:2:0, SEI dropped")


def x265(name, rgb, png, workdir: Path, settings):
    yield from _video_intra(
        name, rgb, workdir, settings, tag="x265", codec="h265", chroma="444", raw_format="y444",
        encoder="x265enc qp={qp} key-int-max=1 speed-preset=slower "
                "option-string=info=0:repeat-headers=0",
        label="HEVC intra (x265)", note="x265enc Main 4:4:4, SEI dropped")


# ---------------------------------------------------------------- layered JPEG 2000 (OpenJPEG)
J2K_RATES = (480, 240, 96, 48, 24, 16)   # compression ratios vs 24 bpp: 0.05 ... 1.5 bpp
SOP = b"\xff\x91"


def j2k_layer_bytes(data: bytes, layers: int, packets_per_layer: int):
    """Bytes needed to decode the first N quality layers of a one-tile LRCP codestream written
    with SOP markers: the prefix up to the first packet of layer N+1, plus a 2-byte EOC, minus
    the 6 bytes of every SOP marker in that prefix (SOP markers are optional; they are used
    here only to find packet boundaries). In JPEG 2000 packet data 0xFF is never followed by
    a byte above 0x8F, so FF91 occurs only as a marker."""
    sods = data.find(b"\xff\x93")
    offs = [m.start() for m in re.finditer(re.escape(SOP), data[sods:])]
    offs = [sods + o for o in offs]
    if len(offs) != layers * packets_per_layer:
        raise CodecError(f"expected {layers * packets_per_layer} SOP markers, found {len(offs)}")
    out = []
    for n in range(1, layers + 1):
        end = offs[n * packets_per_layer] if n < layers else len(data) - 2   # before EOC
        nsop = n * packets_per_layer
        out.append((end + 2 - 6 * nsop, end))
    return out   # [(counted bytes, prefix length)]


def jpeg2000(name, rgb, png, workdir: Path, settings):
    rates = list(settings)
    f = workdir / f"{name}.j2k"
    nres = 6
    subprocess.run(["opj_compress", "-i", str(png), "-o", str(f), "-r",
                    ",".join(str(r) for r in rates), "-I", "-SOP", "-n", str(nres), "-p", "LRCP"],
                   check=True, capture_output=True)
    data = f.read_bytes()
    counted = j2k_layer_bytes(data, len(rates), 3 * nres)
    for n, r in enumerate(rates, start=1):
        out = workdir / f"{name}.j2k.l{n}.png"
        subprocess.run(["opj_decompress", "-i", str(f), "-o", str(out), "-l", str(n)],
                       check=True, capture_output=True)
        yield Point("JPEG 2000 (layered)", f"layers={n} (r={r})", counted[n - 1][0],
                    read_rgb(out), "opj_compress -I, one 6-layer codestream")


# ---------------------------------------------------------------- SIC (project elements)
def plugin_dir(repo: Path) -> Path:
    """target/release, or $SIC_PLUGIN_DIR when set (e.g. a debug build while developing)."""
    return Path(os.environ.get("SIC_PLUGIN_DIR") or repo / "target" / "release")


def sic_env(repo: Path):
    env = dict(os.environ)
    env["GST_PLUGIN_PATH"] = str(plugin_dir(repo))
    env.setdefault("ORT_DYLIB_PATH", str(repo / ".ort" / "current" / "libonnxruntime.so"))
    return env


def property_default(element: str, prop: str, env=None):
    """The default of a numeric element property as gst-inspect-1.0 prints it, or None."""
    p = subprocess.run(["gst-inspect-1.0", element], env=env, capture_output=True, text=True)
    m = re.search(rf"^\s*{re.escape(prop)}\s*:.*?Default:\s*(-?[0-9.]+)", p.stdout, re.M | re.S)
    return float(m.group(1)) if p.returncode == 0 and m else None


def sic(name, rgb, png, workdir: Path, settings, repo: Path, model_dir: Path,
        samplings=("mean", "uniform"), seed=1, timeout=900, rdo_lambda=None):
    env = sic_env(repo)
    # the element's default unless asked for (a float, so nothing else reaches the command)
    rdo = "" if rdo_lambda is None else f" rdo-lambda={float(rdo_lambda)!r}"
    for level in settings:
        f = workdir / f"{name}.sic.l{level}.sic"
        gst(f"filesrc location={png} ! pngdec ! videoconvert ! video/x-raw,format=RGB ! "
            f"sicenc layers={level}{rdo} model-location={model_dir} ! filesink location={f}",
            env=env, timeout=timeout)
        nbytes = f.stat().st_size
        for mode in samplings:
            out = workdir / f"{name}.sic.l{level}.{mode}.png"
            gst(f"filesrc location={f} ! sicparse ! sicdec sampling={mode} seed={seed} "
                f"model-location={model_dir} ! videoconvert ! video/x-raw,format=RGB ! pngenc ! "
                f"filesink location={out}", env=env, timeout=timeout)
            rec = read_rgb(out)
            if rec.shape != rgb.shape:
                raise CodecError(f"SIC decoded {rec.shape}, original {rgb.shape}")
            yield Point(f"SIC ({mode})", f"level={level}", nbytes, rec,
                        f"sicenc layers={level}{rdo}; sicdec sampling={mode} seed={seed}")
