//! Runs the fuzz harness (`fuzz/harness.rs`) on stable Rust: seeds built from real frames of
//! the shipped model, plus deterministic mutations of them. cargo-fuzz explores far more
//! (fuzz/README.md); this keeps the harness compiling and its invariants true in every CI run.
//!
//! `SIC_FUZZ_SEEDS=DIR cargo test --test codec_fuzz_replay` also writes the seeds to
//! `DIR/<target>/`, the starting corpus for `cargo fuzz run`.

mod codec_util;
#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::PathBuf;

use codec_util::{as_ref, bundle, test_photo};
use gstsic::codec::bitstream::split_frame;
use gstsic::codec::{Encoder, RgbImage};

/// xorshift64: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Flips, overwrites, inserts or cuts a few bytes (never the first `keep`).
fn mutate(rng: &mut Rng, input: &[u8], keep: usize) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(3) {
        if v.len() <= keep {
            break;
        }
        let at = keep + rng.below(v.len() - keep);
        match rng.below(4) {
            0 => v[at] ^= 1 << rng.below(8),
            1 => v[at] = rng.next() as u8,
            2 => v.insert(at, rng.next() as u8),
            _ => v.truncate(at),
        }
    }
    v
}

fn crop(img: &RgbImage, w: u32, h: u32) -> RgbImage {
    let mut data = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h as usize {
        let row = y * img.width as usize * 3;
        data.extend_from_slice(&img.data[row..row + w as usize * 3]);
    }
    RgbImage {
        width: w,
        height: h,
        data,
    }
}

/// One real frame per layer count in `layers`, of a `w` × `h` crop of the test photo.
fn frames_of(w: u32, h: u32, layers: std::ops::RangeInclusive<u8>) -> Vec<(u32, u32, Vec<u8>)> {
    let pic = crop(&test_photo(), w, h);
    let mut enc = Encoder::new(bundle());
    layers
        .map(|n| {
            let f = enc.encode(as_ref(&pic), n).expect("encode");
            (pic.width, pic.height, f.bytes)
        })
        .collect()
}

/// One real frame per layer count, of a 72 × 40 crop of the test photo.
fn frames() -> Vec<(u32, u32, Vec<u8>)> {
    frames_of(72, 40, 1..=bundle().levels())
}

fn save_seeds(target: &str, seeds: &[Vec<u8>]) {
    let Some(dir) = std::env::var_os("SIC_FUZZ_SEEDS") else {
        return;
    };
    let dir = PathBuf::from(dir).join(target);
    std::fs::create_dir_all(&dir).unwrap();
    for (i, s) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed_{i:03}")), s).unwrap();
    }
}

#[test]
fn frame_bytes_on_real_and_mutated_frames() {
    let mut seeds = Vec::new();
    for (_, _, f) in frames() {
        seeds.push([&[0u8][..], &f].concat());
        seeds.push([&[1u8][..], &f].concat());
    }
    save_seeds("frame_bytes", &seeds);
    let mut rng = Rng(0x5eed_f00d);
    for s in &seeds {
        harness::frame_bytes(s);
        for _ in 0..40 {
            harness::frame_bytes(&mutate(&mut rng, s, 1));
        }
    }
    for len in [0, 1, 5, 8, 24, 60, 200] {
        let noise: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        harness::frame_bytes(&noise);
    }
}

#[test]
fn decode_frame_on_real_and_mutated_segments() {
    let mut seeds = Vec::new();
    for (w, h, f) in frames() {
        let (header, segments) = split_frame(&f).unwrap();
        for max_layers in [0, header.layers.saturating_sub(1)] {
            let input = harness::decode_frame_input(max_layers, w, h, &segments)
                .expect("segments of the 72x40 crop fit the harness's 252-byte limit");
            seeds.push(input);
        }
        seeds.push([&[2u8, 0][..], &f].concat());
    }
    // Wider than two of the harness's synthesis tiles, so it also decodes them in tiles.
    for (w, h, f) in frames_of(152, 136, 1..=1) {
        let (_, segments) = split_frame(&f).unwrap();
        let input = harness::decode_frame_input(0, w, h, &segments)
            .expect("segments of one layer of the 152x136 crop fit the harness's limit");
        seeds.push(input);
    }
    save_seeds("decode_frame", &seeds);
    let mut rng = Rng(0x00de_c0de);
    for s in &seeds {
        assert!(harness::decode_frame(s), "a real frame failed to decode");
        for _ in 0..3 {
            harness::decode_frame(&mutate(&mut rng, s, 2));
        }
    }
}

#[test]
fn encode_image_on_hostile_layouts() {
    let pic = crop(&test_photo(), 40, 30);
    let mut seeds = Vec::new();
    // format, width, height, stride slack, layers, cut, lambda, pixels
    for head in [
        [0u8, 40, 30, 0, 3, 0, 4], // RGB, tight
        [3, 40, 30, 5, 8, 0, 0],   // BGRx, padded rows, plain rounding
        [6, 17, 3, 0x81, 2, 0, 4], // RGBA, stride 2 bytes short of a row
        [1, 40, 30, 0, 2, 7, 4],   // BGR, buffer 7 bytes short
        [2, 0, 30, 0, 2, 0, 4],    // empty picture
        [0, 40, 30, 0, 0, 0, 4],   // 0 layers
        [0, 40, 30, 0, 9, 0, 4],   // more layers than levels
        [0, 40, 30, 0, 2, 0, 255], // NaN rate term
        [9, 1, 1, 0, 1, 0, 200],   // 1x1 ABGR, lambda 1
    ] {
        seeds.push([&head[..], &pic.data].concat());
    }
    save_seeds("encode_image", &seeds);
    let accepted: Vec<bool> = seeds.iter().map(|s| harness::encode_image(s)).collect();
    assert_eq!(
        accepted,
        [true, true, false, false, false, false, false, true, true]
    );
}

#[test]
fn parse_stream_on_frames_and_garbage() {
    let frames: Vec<Vec<u8>> = frames().into_iter().map(|(_, _, f)| f).collect();
    let noise: Vec<u8> = (0..300u32).map(|i| (i * 31 % 251) as u8).collect();
    let mut seeds = Vec::new();
    // Clean stream, cut into 1-byte and 33-byte buffers.
    for chunk in [0u8, 2] {
        seeds.push([&[chunk][..], &frames[0], &frames[3], &frames[7]].concat());
    }
    // Garbage, a false start (magic and a bad version), frames, a truncated frame.
    let mut messy = vec![5u8];
    messy.extend_from_slice(&noise);
    messy.extend_from_slice(&[0x8B, b'S', b'I', b'C', 9]);
    messy.extend_from_slice(&frames[1]);
    messy.extend_from_slice(&noise[..50]);
    messy.extend_from_slice(&frames[2]);
    messy.extend_from_slice(&frames[4][..frames[4].len() / 2]);
    seeds.push(messy);
    save_seeds("parse_stream", &seeds);
    let found: Vec<usize> = seeds.iter().map(|s| harness::parse_stream(s)).collect();
    assert_eq!(found, [3, 3, 2]);
    let mut rng = Rng(0x0b5e_55ed);
    for s in &seeds {
        for _ in 0..10 {
            harness::parse_stream(&mutate(&mut rng, s, 1));
        }
    }
}

/// One `decode_element` buffer: length (bit 15: fix the header CRC) and bytes.
fn element_buffer(bytes: &[u8], fix_crc: bool) -> Vec<u8> {
    let len = bytes.len() as u16 | if fix_crc { 0x8000 } else { 0 };
    assert!(bytes.len() < 0x1000);
    [&len.to_le_bytes()[..], bytes].concat()
}

#[test]
fn decode_element_on_good_refused_and_foreign_frames() {
    let frames: Vec<Vec<u8>> = frames().into_iter().map(|(_, _, f)| f).collect();
    // The 2-layer frame with its header claiming a 160-pixel width. Where the caps give the
    // size it is refused before decoding and must not renegotiate the output; elsewhere ANS
    // decoding is total and it decodes, to a wrong picture of the size it claims.
    let mut wide = frames[1].clone();
    wide[16..18].copy_from_slice(&160u16.to_le_bytes());
    let stream = |flags: &[u8]| -> Vec<u8> {
        [
            flags.to_vec(),
            element_buffer(&frames[1], false),
            element_buffer(&wide, true),
            element_buffer(b"not a frame", false),
            element_buffer(&frames[4], false),
        ]
        .concat()
    };
    let seeds = vec![
        stream(&[0]),                  // no size in the caps
        stream(&[1, 71, 39]),          // caps 72x40: the wide frame is refused before decoding
        stream(&[2 | 2 << 2]),         // the right model in the caps, max-layers 2
        stream(&[3]),                  // another model in the caps: an error, nothing decoded
        stream(&[1 | 1 << 6, 99, 39]), // caps 100x40, mean fill
    ];
    save_seeds("decode_element", &seeds);
    let found: Vec<usize> = seeds.iter().map(|s| harness::decode_element(s)).collect();
    assert_eq!(found, [3, 2, 3, 0, 2]);
}

/// One `depayload` record: flags (bit 0 marker, bits 1-2 timestamp), length, payload.
fn rtp_record(flags: u8, offset: u32, bytes: &[u8]) -> Vec<u8> {
    let payload = [&offset.to_be_bytes()[..], bytes].concat();
    assert!(payload.len() < 256);
    [&[flags, payload.len() as u8][..], &payload].concat()
}

/// A frame cut into `piece`-byte packets with offsets, the last one marked.
fn rtp_records(frame: &[u8], timestamp: u8, piece: usize) -> Vec<Vec<u8>> {
    let n = frame.len().div_ceil(piece);
    frame
        .chunks(piece)
        .enumerate()
        .map(|(i, c)| rtp_record(timestamp << 1 | u8::from(i + 1 == n), (i * piece) as u32, c))
        .collect()
}

#[test]
fn depayload_on_whole_lost_and_interleaved_packets() {
    let frames: Vec<Vec<u8>> = frames().into_iter().map(|(_, _, f)| f).collect();
    let a = rtp_records(&frames[7], 0, 40);
    let b = rtp_records(&frames[5], 1, 40);
    let seeds = vec![
        // Two whole frames.
        [a.concat(), b.concat()].concat(),
        // The sixth packet of the first frame lost (it salvages), then the second whole.
        [a[..5].concat(), a[6..].concat(), b.concat()].concat(),
        // The first packet of the first frame lost (dropped), the second frame's marker lost
        // (ended by EOS).
        [a[1..].concat(), b[..b.len() - 1].concat()].concat(),
        // A short payload and a huge offset (that frame is dropped), then a whole frame.
        [
            vec![1u8, 2, 0, 0],
            rtp_record(0, u32::MAX - 3, b"data"),
            a.concat(),
        ]
        .concat(),
    ];
    save_seeds("depayload", &seeds);
    let found: Vec<usize> = seeds.iter().map(|s| harness::depayload(s)).collect();
    assert_eq!(found, [2, 2, 1, 1]);
    let mut rng = Rng(0xdeba_c1e5);
    for s in &seeds {
        for _ in 0..20 {
            harness::depayload(&mutate(&mut rng, s, 0));
        }
    }
}

/// Resident memory of this process, in kB (Linux).
fn rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// `rtpsicdepay` keeps nothing of a packet once done with it. `RTPBuffer::payload()` on the
/// borrowed packet of `process_rtp_packet` maps the payload into a copy of the base class's
/// mapping that nobody unmaps; that left about 200 bytes per packet behind (the `depayload`
/// fuzz run hit its 2 GB limit, and 700 runs of this stream grew by 1.9 MB). Now the growth is
/// allocator noise.
#[test]
fn depayload_retains_nothing() {
    let frames: Vec<Vec<u8>> = frames().into_iter().map(|(_, _, f)| f).collect();
    let stream = [
        rtp_records(&frames[7], 0, 40).concat(),
        rtp_records(&frames[5], 1, 40).concat(),
    ]
    .concat();
    assert_eq!(harness::depayload(&stream), 2);
    let before = rss_kb();
    for _ in 0..700 {
        harness::depayload(&stream);
    }
    let grown = rss_kb().saturating_sub(before);
    assert!(
        grown < 600,
        "resident memory grew by {grown} kB over 700 streams"
    );
}
