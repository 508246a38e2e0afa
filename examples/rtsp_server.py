#!/usr/bin/python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""An RTSP server for SIC: one encoder, every client at the number of layers its URL asks for.

The picture is encoded once, by one `sicenc`; each RTSP client gets its own media pipeline that
takes those frames, drops the layers it was not asked for with `siclayers` (a header rewrite,
no network runs) and sends them with `rtpsicpay`:

    videotestsrc ! sicenc ! appsink ==> appsrc ! siclayers layers=N ! rtpsicpay   (per client)

    sudo apt-get install python3-gi gir1.2-gst-rtsp-server-1.0
    GST_PLUGIN_PATH=$PWD/target/release ORT_DYLIB_PATH=$PWD/.ort/current/libonnxruntime.so \\
        /usr/bin/python3 examples/rtsp_server.py [--port 8554]
    gst-launch-1.0 rtspsrc location="rtsp://127.0.0.1:8554/sic?layers=2" ! rtpsicdepay ! \\
        sicdec ! videoconvert ! autovideosink

Without `?layers=N` a client gets every layer. `--check` serves on a free port, plays clients at
1, 3 and every layer in the same process, prints what each received and exits with status 1
unless every client got frames with the layers it asked for, fewer layers in fewer bytes.
"""

import argparse
import socket
import sys
import threading
from urllib.parse import parse_qs

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

SOURCE = ("videotestsrc is-live=true pattern=ball ! "
          "video/x-raw,width=320,height=240,framerate=10/1 ! videoconvert")
MOUNT = "/sic"


class Encoder:
    """The one encoder; hands every coded frame to the appsrc of each playing client."""

    def __init__(self, source):
        self.pipeline = Gst.parse_launch(
            f"{source} ! sicenc ! appsink name=out emit-signals=true sync=false")
        self.clients = set()
        self.lock = threading.Lock()
        self.caps = None
        self.pipeline.get_by_name("out").connect("new-sample", self.on_sample)

    def on_sample(self, sink):
        sample = sink.emit("pull-sample")
        with self.lock:
            self.caps = sample.get_caps()
            clients = list(self.clients)
        for src in clients:
            # Each client stamps frames on its own clock (do-timestamp): strip the encoder's.
            buf = sample.get_buffer().copy()
            buf.pts = buf.dts = Gst.CLOCK_TIME_NONE
            src.set_caps(self.caps)
            src.emit("push-buffer", buf)
        return Gst.FlowReturn.OK

    def add(self, src):
        with self.lock:
            self.clients.add(src)

    def remove(self, src):
        with self.lock:
            self.clients.discard(src)


class LayersFactory(GstRtspServer.RTSPMediaFactory):
    """Builds one media per client; `?layers=N` in the URL picks its layers (0: all)."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder
        self.set_shared(False)

    def do_create_element(self, url):
        query = parse_qs(url.query or "")
        try:
            layers = max(0, int(query.get("layers", ["0"])[0]))
        except ValueError:
            layers = 0
        return Gst.parse_launch(
            "( appsrc name=frames is-live=true do-timestamp=true format=time ! "
            f"siclayers layers={layers} ! rtpsicpay name=pay0 pt=96 )")

    def do_configure(self, media):
        GstRtspServer.RTSPMediaFactory.do_configure(self, media)
        src = media.get_element().get_by_name("frames")
        self.encoder.add(src)
        media.connect("unprepared", lambda _m: self.encoder.remove(src))


def serve(port, source=SOURCE):
    """Starts the encoder and an RTSP server on `port` (main loop not run here)."""
    encoder = Encoder(source)
    if encoder.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
        sys.exit("the encoder did not start (GST_PLUGIN_PATH, ORT_DYLIB_PATH?)")
    server = GstRtspServer.RTSPServer()
    server.set_service(str(port))
    server.get_mount_points().add_factory(MOUNT, LayersFactory(encoder))
    if server.attach(None) == 0:
        sys.exit(f"cannot serve RTSP on port {port}")
    return encoder, server


def play(port, layers, frames=5):
    """Plays rtsp://127.0.0.1:port/sic?layers=N; returns [(layers carried, bytes)] per frame."""
    query = f"?layers={layers}" if layers else ""
    client = Gst.parse_launch(
        f"rtspsrc location=rtsp://127.0.0.1:{port}{MOUNT}{query} latency=100 ! "
        "rtpsicdepay ! sicparse ! appsink name=coded sync=false")
    sink = client.get_by_name("coded")
    client.set_state(Gst.State.PLAYING)
    got = []
    for _ in range(frames):
        sample = sink.emit("try-pull-sample", 20 * Gst.SECOND)
        if sample is None:
            break
        s = sample.get_caps().get_structure(0)
        got.append((s.get_value("layers"), s.get_value("levels"), sample.get_buffer().get_size()))
    client.set_state(Gst.State.NULL)
    return got


def check():
    with socket.socket() as s:   # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    encoder, _server = serve(port)
    loop = GLib.MainLoop()
    threading.Thread(target=loop.run, daemon=True).start()
    problems, sizes = [], {}
    for asked in (1, 3, 0):
        got = play(port, asked)
        print(f"layers={asked or 'all'}: " + ", ".join(f"{n} layers {b} B" for n, _, b in got))
        if len(got) < 5:
            problems.append(f"layers={asked}: {len(got)} of 5 frames")
            continue
        want = asked or got[0][1]
        problems += [f"layers={asked}: a frame carries {n}" for n, _, _ in got if n != want]
        sizes[want] = sum(b for _, _, b in got) / len(got)
    ordered = [sizes[k] for k in sorted(sizes)]
    if ordered != sorted(ordered) or len(set(ordered)) != len(ordered):
        problems.append(f"mean bytes per frame not increasing with layers: {sizes}")
    loop.quit()
    encoder.pipeline.set_state(Gst.State.NULL)
    for p in problems:
        print("FAIL:", p)
    return 1 if problems else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=8554)
    ap.add_argument("--check", action="store_true", help="serve and play three clients, then exit")
    a = ap.parse_args()
    Gst.init(None)
    for name in ("sicenc", "siclayers", "rtpsicpay"):
        if Gst.ElementFactory.find(name) is None:
            sys.exit(f"no {name} element: set GST_PLUGIN_PATH to the directory of libgstsic.so")
    if a.check:
        return check()
    serve(a.port)
    print(f"serving rtsp://127.0.0.1:{a.port}{MOUNT}?layers=N (N = 1.., none: every layer)")
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
