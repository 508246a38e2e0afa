#!/usr/bin/python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""An application embedding the SIC elements from Python (GObject introspection).

It decodes a photo (the repository's test photo, or the file given) and feeds it, frame after
frame, through appsrc, encodes them with sicenc, changes the number of layers
while the pipeline plays by setting a capsfilter's caps, and takes both the coded frames and the
decoded pictures back through appsinks:

    appsrc ! sicenc ! capsfilter ! tee ! queue ! appsink (coded frames)
                                      tee ! queue ! sicdec ! appsink (pictures)

It prints, per frame, the layers the frame carries, its size in bytes and the PSNR of the decoded
picture, and exits with status 1 unless every frame carries the layers asked for just before it
was pushed, and more layers give more bytes and a better picture.

    sudo apt-get install python3-gi gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0
    cargo build --release
    GST_PLUGIN_PATH=$PWD/target/release ORT_DYLIB_PATH=$PWD/.ort/current/libonnxruntime.so \\
        /usr/bin/python3 examples/app.py [picture-file]
"""

import math
import os
import sys

import gi

gi.require_version("Gst", "1.0")
from gi.repository import Gst  # noqa: E402

PHOTO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data",
                     "ladybird-256x192.png")
TIMEOUT = 30 * Gst.SECOND


def load_picture(path):
    """Decodes a picture file to RGB with a one-shot pipeline; returns (width, height, bytes)."""
    pipeline = Gst.parse_launch(
        "filesrc name=file ! decodebin ! videoconvert ! video/x-raw,format=RGB ! "
        "appsink name=sink sync=false"
    )
    pipeline.get_by_name("file").set_property("location", path)
    pipeline.set_state(Gst.State.PLAYING)
    sample = pipeline.get_by_name("sink").emit("try-pull-sample", TIMEOUT)
    check_bus(pipeline.get_bus())
    pipeline.set_state(Gst.State.NULL)
    if sample is None:
        sys.exit(f"cannot decode {path}")
    width, height, data = rgb_rows(sample)
    return width, height, data


def psnr(a, b):
    mse = sum((p - q) ** 2 for p, q in zip(a, b)) / len(a)
    return float("inf") if mse == 0 else 10 * math.log10(255 * 255 / mse)


def rgb_rows(sample):
    """(width, height, RGB bytes without row padding) of a raw RGB sample."""
    caps = sample.get_caps().get_structure(0)
    width, height = caps.get_value("width"), caps.get_value("height")
    ok, info = sample.get_buffer().map(Gst.MapFlags.READ)
    if not ok:
        raise RuntimeError("cannot map a decoded picture")
    try:
        stride = len(info.data) // height
        return width, height, b"".join(
            bytes(info.data[y * stride : y * stride + 3 * width]) for y in range(height)
        )
    finally:
        sample.get_buffer().unmap(info)


def check_bus(bus):
    msg = bus.pop_filtered(Gst.MessageType.ERROR)
    if msg:
        err, debug = msg.parse_error()
        raise RuntimeError(f"{msg.src.get_name()}: {err.message} ({debug})")


def main():
    Gst.init(None)
    for name in ("sicenc", "sicdec"):
        if Gst.ElementFactory.find(name) is None:
            sys.exit(f"no {name} element: set GST_PLUGIN_PATH to the directory of libgstsic.so")

    width, height, source = load_picture(sys.argv[1] if len(sys.argv) > 1 else PHOTO)
    pipeline = Gst.parse_launch(
        f"appsrc name=src format=time caps=video/x-raw,format=RGB,width={width},"
        f"height={height},framerate=10/1 ! sicenc ! capsfilter name=cf ! tee name=t "
        "t. ! queue ! appsink name=coded sync=false "
        "t. ! queue ! sicdec sampling=mean ! video/x-raw,format=RGB ! appsink name=pictures sync=false"
    )
    src, cf = pipeline.get_by_name("src"), pipeline.get_by_name("cf")
    coded, pictures = pipeline.get_by_name("coded"), pipeline.get_by_name("pictures")
    bus = pipeline.get_bus()
    if pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        check_bus(bus)
        sys.exit("the pipeline did not start")

    # Layers asked for, frame by frame (changed while playing); clamped to the model's levels.
    schedule = [1, 1, 4, 4, 8, 8, 2]
    rows, levels = [], None
    for n, wanted in enumerate(schedule):
        if levels is not None:
            wanted = min(wanted, levels)
        cf.set_property("caps", Gst.Caps.from_string(f"video/x-sic,layers={wanted}"))
        buf = Gst.Buffer.new_wrapped(source)
        buf.pts, buf.duration = n * Gst.SECOND // 10, Gst.SECOND // 10
        if src.emit("push-buffer", buf) != Gst.FlowReturn.OK:
            check_bus(bus)
            sys.exit(f"pushing frame {n} failed")
        frame = coded.emit("try-pull-sample", TIMEOUT)
        shown = pictures.emit("try-pull-sample", TIMEOUT)
        check_bus(bus)
        if frame is None or shown is None:
            sys.exit(f"frame {n}: nothing came out")
        s = frame.get_caps().get_structure(0)
        levels = s.get_value("levels")
        rows.append((n, wanted, s.get_value("layers"), frame.get_buffer().get_size(),
                     psnr(source, rgb_rows(shown)[2])))

    src.emit("end-of-stream")
    bus.timed_pop_filtered(TIMEOUT, Gst.MessageType.EOS | Gst.MessageType.ERROR)
    pipeline.set_state(Gst.State.NULL)

    bpp = 8 / (width * height)
    print(f"{'frame':>5} {'asked':>5} {'layers':>6} {'bytes':>6} {'bpp':>6} {'PSNR dB':>8}")
    for n, wanted, layers, size, quality in rows:
        print(f"{n:>5} {wanted:>5} {layers:>6} {size:>6} {size * bpp:>6.3f} {quality:>8.2f}")

    problems = [f"frame {n} asked for {w} layers, carries {l}" for n, w, l, _, _ in rows if w != l]
    by_layers = sorted({l: (size, q) for _, _, l, size, q in rows}.items())
    for (la, (sa, qa)), (lb, (sb, qb)) in zip(by_layers, by_layers[1:]):
        if not (sb > sa and qb > qa):
            problems.append(f"{lb} layers ({sb} B, {qb:.2f} dB) not above {la} ({sa} B, {qa:.2f} dB)")
    for p in problems:
        print("FAIL:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
