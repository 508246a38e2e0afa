// SPDX-License-Identifier: MIT OR Apache-2.0
//! What each fuzz target does with its input, shared by the cargo-fuzz targets
//! (`fuzz/fuzz_targets/`) and the stable replay test (`tests/codec_fuzz_replay.rs`), so the
//! harness is built, linted and run by the normal test suite too.
//!
//! Every function takes arbitrary bytes and must return normally: any panic (including a
//! failed invariant below) is a finding. Inputs are read structure-aware where random bytes
//! would almost never get past a check (the header CRC, the model id): the harness builds a
//! valid frame around fuzzed fields and payloads, so the fuzzer spends its time in the entropy
//! decoder and the networks rather than in the first `if`.

#![allow(dead_code)]

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use gst::prelude::*;
use gst_rtp::prelude::*;
use gstsic::codec::bitstream;
use gstsic::codec::{
    Bundle, Decoder, Encoder, ImageRef, PixelFormat, RuntimeOptions, Sampling, peek_frame, thin,
};

/// Largest picture side the structured targets build: big enough for several latent rows and
/// for tiled synthesis, small enough to keep an execution in the milliseconds.
const MAX_SIDE: u32 = 160;

/// The model, loaded once and held for the process's life. It is loaded as a shared bundle, so
/// every `sicdec` the element target starts (same directory and threads) reuses it instead of
/// loading the model again.
fn bundle() -> Arc<Bundle> {
    static B: OnceLock<Arc<Bundle>> = OnceLock::new();
    B.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .map(|d| d.join("models/sic-lite"))
            .find(|d| d.join("model.json").is_file())
            .expect("models/sic-lite not found above the crate");
        let opts = RuntimeOptions {
            threads: 1,
            ..RuntimeOptions::default()
        };
        Bundle::load_shared(&dir, &opts)
            .unwrap_or_else(|e| panic!("cannot load {}: {e}", dir.display()))
            .0
    })
    .clone()
}

/// A decoder of the shipped model with synthesis tiles of `tile` pixels (0: whole pictures).
fn new_decoder(tile: u32) -> Mutex<Decoder> {
    let mut d = Decoder::new(bundle());
    // The structured targets never build bigger pictures; a raw input declaring one is
    // refused before any network runs, as sicdec does with the size from its caps.
    d.set_max_area(u64::from(MAX_SIDE * MAX_SIDE));
    d.set_tile_size(tile).expect("0 or a multiple of 64");
    Mutex::new(d)
}

fn decoder() -> &'static Mutex<Decoder> {
    static D: OnceLock<Mutex<Decoder>> = OnceLock::new();
    D.get_or_init(|| new_decoder(0))
}

/// Side of the synthesis tiles of [`tiled_decoder`]: a picture wider or taller than 128 pixels
/// (one 64-pixel tile plus the overlap on both sides) is cut.
const FUZZ_TILE: u32 = 64;

/// A second decoder that runs the synthesis in small tiles, to hold tiled decoding to the
/// promise that it gives the same picture as one whole run, on hostile latents too.
fn tiled_decoder() -> &'static Mutex<Decoder> {
    static D: OnceLock<Mutex<Decoder>> = OnceLock::new();
    D.get_or_init(|| new_decoder(FUZZ_TILE))
}

/// Reads bytes from the front of the input; past the end it yields zeros, so every input
/// maps to some case.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }

    fn rest(&mut self) -> &[u8] {
        self.take(usize::MAX)
    }
}

/// Rewrites the CRC field of the header at the start of `data` (when the bytes for it are
/// there), so mutated header fields get past the CRC check.
pub fn fix_header_crc(data: &mut [u8]) {
    if data.len() < 8 || data[7] == 0 {
        return;
    }
    let hlen = bitstream::header_len(data[7]);
    if data.len() >= hlen {
        let crc = bitstream::crc32(&data[..hlen - 4]);
        data[hlen - 4..hlen].copy_from_slice(&crc.to_le_bytes());
    }
}

fn init_gstreamer() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        gst::init().expect("GStreamer init");
        gstsic::plugin_register_static().expect("register the sic plugin");
    });
}

/// Header parsing and thinning on raw bytes.
///
/// Invariants: a header that parses re-serialises to the same bytes; every shorter prefix of
/// it is "need more" (never an error); thinning a complete frame to `k` layers gives a frame
/// that parses, carries `min(k, n)` layers and whose payload is a prefix of the original.
/// With the first byte odd, the CRC field is recomputed first so the rest of the header is
/// reachable.
pub fn frame_bytes(input: &[u8]) {
    let Some((&mode, data)) = input.split_first() else {
        return;
    };
    let mut data = data.to_vec();
    if mode & 1 == 1 {
        fix_header_crc(&mut data);
    }
    let Ok(Some(info)) = peek_frame(&data) else {
        return;
    };
    let header = bitstream::parse_header(&data)
        .expect("peek_frame accepted the header")
        .expect("complete header");
    assert_eq!(header.info(), info);
    assert_eq!(header.to_bytes(), data[..info.header_len]);
    for cut in 0..info.header_len {
        assert!(
            matches!(peek_frame(&data[..cut]), Ok(None)),
            "prefix of {cut} bytes of a valid header was not 'need more'"
        );
    }
    assert!(info.header_len <= info.frame_len);
    if data.len() < info.frame_len {
        assert!(bitstream::split_frame(&data).is_err());
        return;
    }
    let frame = &data[..info.frame_len];
    assert!(thin(frame, 0).is_err());
    for k in 1..=info.layers.saturating_add(1) {
        let t = thin(frame, k).expect("thinning a valid frame");
        let got = peek_frame(&t)
            .expect("thinned frame")
            .expect("whole header");
        let keep = k.min(info.layers);
        assert_eq!(got.layers, keep);
        assert_eq!(got.frame_len, t.len());
        let (th, _) = bitstream::split_frame(&t).expect("thinned frame splits");
        assert_eq!(th.segment_lens[..], header.segment_lens[..=keep as usize]);
        assert_eq!(
            t[got.header_len..],
            frame[info.header_len..info.header_len + t.len() - got.header_len]
        );
    }
}

fn sampling(b: u8, seed: u64) -> Sampling {
    if b & 1 == 0 {
        Sampling::Mean
    } else {
        Sampling::Uniform { seed }
    }
}

/// Decoding hostile frames with the shipped model.
///
/// Input: `mode, max_layers, width, height, layers, seed, len_0 … len_n, payload…`. With bit 1
/// of `mode` set the rest is handed to the decoder as it is; otherwise a valid header (CRC,
/// model id, levels, sizes up to `MAX_SIDE`) is built around fuzzed segment bytes.
///
/// Invariants: no panic; a decoded picture has the declared size and `min(carried, max_layers)`
/// layers; with mean fill, decoding `k` layers of a frame equals decoding the frame thinned to
/// `k` layers (the thinning promise of docs/bitstream.md), decoding with the synthesis in tiles
/// gives the same picture as one whole run, and a decoded picture can be written
/// out in any pixel format, while a too-small destination is an error. Returns whether the
/// frame decoded.
pub fn decode_frame(input: &[u8]) -> bool {
    let b = bundle();
    let mut r = Bytes(input);
    let mode = r.u8();
    let max_layers = r.u8() % (b.levels() + 2);
    let mut dec = decoder().lock().unwrap_or_else(|e| e.into_inner());
    if mode & 2 != 0 {
        return dec.decode(r.rest(), max_layers, sampling(mode, 7)).is_ok();
    }
    let width = 1 + u32::from(r.u8()) % MAX_SIDE;
    let height = 1 + u32::from(r.u8()) % MAX_SIDE;
    let layers = 1 + r.u8() % b.levels();
    let seed = u64::from(r.u8());
    let lens: Vec<usize> = (0..=layers).map(|_| 4 * (r.u8() as usize % 64)).collect();
    let mut segments: Vec<Vec<u8>> = lens.iter().map(|&l| r.take(l).to_vec()).collect();
    for s in &mut segments {
        s.truncate(s.len() / 4 * 4);
    }
    let frame = bitstream::assemble(b.model_id(), width, height, b.levels(), &segments);
    let Ok(d) = dec.decode(&frame, max_layers, sampling(mode, seed)) else {
        return false;
    };
    let want = if max_layers == 0 {
        layers
    } else {
        layers.min(max_layers)
    };
    assert_eq!(d.layers, want);
    assert_eq!((d.image.width, d.image.height), (width, height));
    assert_eq!(d.image.data.len(), (width * height * 3) as usize);
    if mode & 1 == 0 && width.max(height) > 2 * FUZZ_TILE {
        let mut tiled = tiled_decoder().lock().unwrap_or_else(|e| e.into_inner());
        let t = tiled
            .decode(&frame, max_layers, Sampling::Mean)
            .expect("a frame that decoded whole decodes in tiles");
        assert_eq!(
            t.image, d.image,
            "tiled synthesis differs from the whole picture"
        );
    }
    if mode & 1 == 0 && want < layers {
        let thinned = thin(&frame, want).expect("thinning a frame that decoded");
        let t = dec
            .decode(&thinned, 0, Sampling::Mean)
            .expect("the thinned frame decodes");
        assert_eq!(t.image, d.image, "thinned frame decodes differently");
    }
    let format = PixelFormat::ALL[(mode >> 2) as usize % PixelFormat::ALL.len()];
    let row = width as usize * format.bytes_per_pixel();
    let stride = row + (mode >> 6) as usize;
    let need = stride * (height as usize - 1) + row;
    let mut dst = vec![0u8; need];
    d.image
        .write_to(format, stride, &mut dst)
        .expect("writing into a buffer of the right size");
    assert!(d.image.write_to(format, stride, &mut dst[1..]).is_err());
    assert!(d.image.write_to(format, row - 1, &mut dst).is_err());
    true
}

/// Encoding hostile pictures (sizes, strides, formats, short buffers, rate terms).
///
/// Input: `format, width, height, stride slack, layers, cut, lambda, pixels…`; bit 7 of the
/// slack byte makes the stride too short, `cut` bytes are taken off the buffer's end.
/// Invariants: a picture whose buffer cannot hold it is an error; an accepted one gives a frame
/// that parses, carries the asked layers, whose `layer_sizes` are the lengths of its thinned
/// frames, and that decodes to the picture size. Returns whether the picture was accepted.
pub fn encode_image(input: &[u8]) -> bool {
    let b = bundle();
    let mut r = Bytes(input);
    let format = PixelFormat::ALL[r.u8() as usize % PixelFormat::ALL.len()];
    let width = u32::from(r.u8()) % (MAX_SIDE + 1);
    let height = u32::from(r.u8()) % (MAX_SIDE + 1);
    let slack = r.u8();
    let layers = r.u8() % (b.levels() + 2);
    let cut = r.u8();
    let lambda = match r.u8() {
        255 => f32::NAN,
        254 => f32::INFINITY,
        253 => -0.01,
        v => f32::from(v) / 200.0,
    };
    let row = width as usize * format.bytes_per_pixel();
    let stride = if slack & 0x80 != 0 {
        row.saturating_sub(1 + (slack & 0x7f) as usize)
    } else {
        row + slack as usize
    };
    let need = (stride * height as usize).saturating_sub(stride.saturating_sub(row));
    let len = need.saturating_sub(cut as usize);
    // The pixels: the fuzzed bytes repeated to the buffer's length.
    let pixels = r.rest();
    let data: Vec<u8> = if pixels.is_empty() {
        vec![128; len]
    } else {
        pixels.iter().copied().cycle().take(len).collect()
    };
    let image = ImageRef {
        width,
        height,
        stride,
        format,
        data: &data,
    };
    let mut enc = Encoder::new(b.clone());
    // A refused rate term leaves the previous one (the default) in place.
    let lambda_ok = enc.set_rdo_lambda(lambda).is_ok();
    assert_eq!(lambda_ok, (0.0..=1.0).contains(&lambda));
    let fits = width > 0 && height > 0 && stride >= row && cut == 0;
    let encoded = enc.encode(image, layers);
    if !fits || layers == 0 || layers > b.levels() {
        assert!(encoded.is_err(), "accepted a bad picture or layer count");
        return false;
    }
    let f = encoded.expect("a valid picture encodes");
    let info = peek_frame(&f.bytes).unwrap().unwrap();
    assert_eq!(info.layers, layers);
    assert_eq!(info.frame_len, f.bytes.len());
    for (k, &size) in f.layer_sizes.iter().enumerate() {
        assert_eq!(thin(&f.bytes, k as u8 + 1).unwrap().len(), size);
    }
    let mut dec = decoder().lock().unwrap_or_else(|e| e.into_inner());
    let d = dec
        .decode(&f.bytes, 0, Sampling::Mean)
        .expect("own frame decodes");
    assert_eq!((d.image.width, d.image.height), (width, height));
    true
}

/// `sicparse` framing a hostile byte stream (files, TCP), through a GStreamer harness.
///
/// Input: `chunk, stream…`: the stream is pushed in buffers of `1 + 16 · chunk` bytes, then EOS.
/// Invariants: every buffer that leaves the parser is exactly one frame with a valid header;
/// the frames are byte-for-byte pieces of the stream, in order and not overlapping (the parser
/// neither invents nor reorders bytes). Returns how many frames came out.
pub fn parse_stream(input: &[u8]) -> usize {
    init_gstreamer();
    let Some((&chunk, stream)) = input.split_first() else {
        return 0;
    };
    let mut h = gst_check::Harness::new("sicparse");
    h.set_src_caps_str("video/x-sic");
    for piece in stream.chunks(1 + 16 * chunk as usize) {
        if h.push(gst::Buffer::from_slice(piece.to_vec())).is_err() {
            break;
        }
    }
    h.push_event(gst::event::Eos::new());
    let mut from = 0;
    let mut frames = 0;
    while let Some(buf) = h.try_pull() {
        let map = buf.map_readable().expect("readable buffer");
        let out = map.as_slice();
        let info = peek_frame(out)
            .expect("parser output has a valid header")
            .expect("parser output holds a whole header");
        assert_eq!(
            info.frame_len,
            out.len(),
            "parser output is not exactly one frame"
        );
        let at = stream[from..]
            .windows(out.len())
            .position(|w| w == out)
            .expect("parser output is a piece of the stream, after the previous one");
        from += at + out.len();
        frames += 1;
    }
    frames
}

/// `rtpsicdepay` fed hostile RTP packets, through a GStreamer harness.
///
/// Input: records `flags, len, payload[len]`; `flags` bit 0 is the marker bit and bits 1–2 the
/// RTP timestamp (so packets of up to four frames interleave); the payload starts with the
/// 4-byte offset header of docs/rtp.md like a real one. Then EOS.
/// Invariants: every buffer that comes out is exactly one valid frame; no more frames than
/// packets. Returns how many frames came out.
pub fn depayload(input: &[u8]) -> usize {
    init_gstreamer();
    let mut r = Bytes(input);
    let mut h = gst_check::Harness::new("rtpsicdepay");
    h.set_src_caps_str(
        "application/x-rtp,media=video,clock-rate=90000,encoding-name=X-SIC,payload=96",
    );
    let mut packets = 0;
    for seq in 0u16.. {
        if r.0.is_empty() {
            break;
        }
        let flags = r.u8();
        let len = usize::from(r.u8());
        let payload = r.take(len);
        let mut buf =
            gst::Buffer::new_rtp_with_sizes(payload.len() as u32, 0, 0).expect("an RTP buffer");
        {
            let mut rtp = gst_rtp::RTPBuffer::from_buffer_writable(buf.get_mut().unwrap())
                .expect("writable RTP");
            rtp.set_seq(seq);
            rtp.set_marker(flags & 1 != 0);
            rtp.set_timestamp(u32::from(flags >> 1 & 3) * 9000);
            rtp.payload_mut().expect("payload").copy_from_slice(payload);
        }
        packets += 1;
        if h.push(buf).is_err() {
            break;
        }
    }
    h.push_event(gst::event::Eos::new());
    let mut frames = 0;
    while let Some(buf) = h.try_pull() {
        let map = buf.map_readable().expect("readable buffer");
        bitstream::split_frame(map.as_slice()).expect("depayloader output is one valid frame");
        frames += 1;
    }
    assert!(frames <= packets, "{frames} frames from {packets} packets");
    frames
}

/// `sicdec` fed a hostile sequence of buffers, through a GStreamer harness.
///
/// Input: `flags, [caps width, caps height,] (len_lo, len_hi, bytes…)*`. `flags` picks the sink
/// caps (no size, a size, the right model id, another model's id), `max-layers` and the
/// sampling mode. Each buffer is `len & 0xfff` bytes; with bit 15 of `len` set, its header CRC
/// is rewritten first. At most 8 buffers, then EOS.
///
/// Invariants: no panic; no output bigger than `max-pixels`; the last output buffer holds at
/// least the picture of the final caps; no caps event goes out without a buffer after it, so a frame that is dropped never
/// renegotiates downstream (counted: caps events ≤ output buffers). Returns the number of
/// pictures that came out.
pub fn decode_element(input: &[u8]) -> usize {
    init_gstreamer();
    let b = bundle();
    let mut r = Bytes(input);
    let flags = r.u8();
    let caps = match flags % 4 {
        0 => "video/x-sic".to_string(),
        1 => format!(
            "video/x-sic,width={},height={}",
            1 + u32::from(r.u8()) % MAX_SIDE,
            1 + u32::from(r.u8()) % MAX_SIDE
        ),
        2 => format!("video/x-sic,model={}", b.model_id_hex()),
        _ => "video/x-sic,model=00000000000000ff".to_string(),
    };
    // Configured before the harness starts it: with the harness's model directory and threads
    // it shares the loaded model instead of loading its own on every execution.
    let dec = gst::ElementFactory::make("sicdec")
        .property("model-location", b.dir().to_str())
        .property("threads", 1u32)
        .property("max-layers", u32::from(flags >> 2) % 10)
        .property("max-pixels", u64::from(MAX_SIDE * MAX_SIDE))
        .property_from_str(
            "sampling",
            ["model", "mean", "uniform"][(flags >> 6) as usize % 3],
        )
        .build()
        .expect("sicdec");
    let mut h = gst_check::Harness::with_element(&dec, Some("sink"), Some("src"));
    h.set_src_caps_str(&caps);
    for _ in 0..8 {
        if r.0.is_empty() {
            break;
        }
        let len = u16::from_le_bytes([r.u8(), r.u8()]);
        let mut buf = r.take(usize::from(len & 0xfff)).to_vec();
        if len & 0x8000 != 0 {
            fix_header_crc(&mut buf);
        }
        if h.push(gst::Buffer::from_slice(buf)).is_err() {
            break;
        }
    }
    h.push_event(gst::event::Eos::new());
    let mut pictures = Vec::new();
    while let Some(buf) = h.try_pull() {
        pictures.push(buf.size());
    }
    let mut caps_events = 0;
    while let Some(ev) = h.try_pull_event() {
        if let gst::EventView::Caps(c) = ev.view() {
            caps_events += 1;
            let info = gst_video::VideoInfo::from_caps(c.caps()).expect("raw video caps");
            assert!(info.width() * info.height() <= MAX_SIDE * MAX_SIDE);
        }
    }
    assert!(
        caps_events <= pictures.len(),
        "{caps_events} caps events for {} pictures: a dropped frame renegotiated",
        pictures.len()
    );
    if let Some(caps) = h.sinkpad().and_then(|p| p.current_caps()) {
        let info = gst_video::VideoInfo::from_caps(&caps).expect("raw video caps");
        assert!(pictures.last().is_some_and(|&n| n >= info.size()));
    }
    pictures.len()
}

/// The `decode_frame` input that rebuilds a frame of `width` × `height` (each `1..=MAX_SIDE`)
/// from its segments (each at most 252 bytes, a multiple of 4), decoded with at most
/// `max_layers` layers and mean fill. For seeds.
pub fn decode_frame_input(
    max_layers: u8,
    width: u32,
    height: u32,
    segments: &[&[u8]],
) -> Option<Vec<u8>> {
    let ok = (1..=MAX_SIDE).contains(&width)
        && (1..=MAX_SIDE).contains(&height)
        && (2..=256).contains(&segments.len())
        && segments.iter().all(|s| s.len() <= 252 && s.len() % 4 == 0);
    if !ok {
        return None;
    }
    let mut v = vec![
        0,
        max_layers,
        (width - 1) as u8,
        (height - 1) as u8,
        (segments.len() - 2) as u8,
        0,
    ];
    v.extend(segments.iter().map(|s| (s.len() / 4) as u8));
    for s in segments {
        v.extend_from_slice(s);
    }
    Some(v)
}
