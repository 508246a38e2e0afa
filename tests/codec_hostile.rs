//! Hostile input: truncated, corrupted, oversized and foreign frames, bad pictures. Every case
//! must be an `Err` (or, for payload corruption, at worst a wrong picture), never a panic.

mod codec_util;

use gstsic::codec::bitstream::{Header, MAGIC, crc32, header_len};
use gstsic::codec::{Decoder, Encoder, Error, ImageRef, PixelFormat, Sampling, peek_frame, thin};

use codec_util::*;

fn frame(layers: u8) -> Vec<u8> {
    let b = bundle();
    let img = synthetic(96, 64);
    Encoder::new(b).encode(as_ref(&img), layers).unwrap().bytes
}

/// Header of a real frame with some fields changed, CRC recomputed (so only the semantic
/// checks can reject it).
fn reheader(frame: &[u8], edit: impl FnOnce(&mut Header)) -> Vec<u8> {
    let info = peek_frame(frame).unwrap().unwrap();
    let n = info.layers as usize;
    let lens = (0..=n)
        .map(|i| {
            let at = 20 + 4 * i;
            u32::from_le_bytes(frame[at..at + 4].try_into().unwrap())
        })
        .collect();
    let mut h = Header {
        model_id: info.model_id,
        width: info.width,
        height: info.height,
        levels: info.levels,
        layers: info.layers,
        segment_lens: lens,
    };
    edit(&mut h);
    let mut out = h.to_bytes();
    out.extend_from_slice(&frame[info.header_len..]);
    out
}

#[test]
fn truncated_frames_are_rejected() {
    let f = frame(3);
    let mut dec = Decoder::new(bundle());
    let hlen = header_len(3);
    for n in 0..f.len() {
        let p = &f[..n];
        match peek_frame(p) {
            Ok(None) => assert!(n < hlen, "prefix {n}: header complete but None"),
            Ok(Some(info)) => {
                assert!(n >= hlen);
                assert_eq!(info.frame_len, f.len());
            }
            Err(e) => panic!("valid prefix of {n} bytes rejected: {e}"),
        }
        assert!(
            dec.decode(p, 0, Sampling::Mean).is_err(),
            "prefix {n} decoded"
        );
        assert!(thin(p, 1).is_err(), "prefix {n} thinned");
    }
    // Trailing garbage is not silently accepted either.
    let mut longer = f.clone();
    longer.extend_from_slice(&[0, 0, 0, 0]);
    assert!(dec.decode(&longer, 0, Sampling::Mean).is_err());
    assert!(dec.decode(&f, 0, Sampling::Mean).is_ok());
}

#[test]
fn every_corrupted_header_byte_is_rejected() {
    let f = frame(2);
    let mut dec = Decoder::new(bundle());
    for i in 0..header_len(2) {
        for x in [0x01u8, 0x80, 0xFF] {
            let mut g = f.clone();
            g[i] ^= x;
            assert!(
                peek_frame(&g).is_err(),
                "byte {i} ^ {x:#x} accepted by peek"
            );
            let e = dec.decode(&g, 0, Sampling::Mean).unwrap_err();
            assert!(matches!(e, Error::Bitstream(_)), "byte {i}: {e}");
            assert!(thin(&g, 1).is_err());
        }
    }
}

#[test]
fn payload_corruption_never_panics() {
    let f = frame(4);
    let mut dec = Decoder::new(bundle());
    let hlen = header_len(4);
    let mut state = 0x1234_5678u64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut errors = 0;
    for _ in 0..40 {
        let mut g = f.clone();
        for _ in 0..1 + next() % 4 {
            let i = hlen + (next() as usize % (f.len() - hlen));
            g[i] ^= 1 + (next() % 255) as u8;
        }
        if dec.decode(&g, 0, Sampling::Mean).is_err() {
            errors += 1;
        }
    }
    eprintln!("{errors}/40 corrupted payloads detected");
    // Random bytes with a valid-looking start.
    for len in [0usize, 3, 4, 19, 20, 64, 1000] {
        let mut g: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if len >= 4 {
            g[..4].copy_from_slice(&MAGIC);
        }
        assert!(dec.decode(&g, 0, Sampling::Mean).is_err());
        let _ = peek_frame(&g);
    }
}

#[test]
fn semantic_header_errors() {
    let f = frame(2);
    let b = bundle();
    let mut dec = Decoder::new(b.clone());

    // Foreign model.
    let g = reheader(&f, |h| h.model_id = *b"notmine!");
    assert!(peek_frame(&g).unwrap().is_some());
    match dec.decode(&g, 0, Sampling::Mean) {
        Err(Error::ModelMismatch { expected, found }) => {
            assert_eq!(expected, b.model_id_hex());
            assert_eq!(found, "6e6f746d696e6521");
        }
        other => panic!("want ModelMismatch, got {:?}", other.err()),
    }
    // Levels differ from the model's.
    let g = reheader(&f, |h| h.levels = 7);
    assert!(matches!(
        dec.decode(&g, 0, Sampling::Mean),
        Err(Error::Bitstream(_))
    ));
    // More layers than levels.
    let g = reheader(&f, |h| {
        h.levels = 1;
    });
    assert!(peek_frame(&g).is_err());
    // Zero and oversized pictures.
    for (w, h) in [(0, 64), (96, 0), (20000, 8), (16384, 16384)] {
        let g = reheader(&f, |hd| {
            hd.width = w;
            hd.height = h;
        });
        assert!(peek_frame(&g).is_err(), "{w}x{h} accepted");
    }
    // A decoder limited to smaller pictures refuses before running any network.
    let mut small = Decoder::new(b.clone());
    small.set_max_area(64 * 64);
    let e = small.decode(&f, 0, Sampling::Mean).unwrap_err().to_string();
    assert!(e.contains("96x64"), "{e}");
    small.set_max_area(96 * 64);
    assert!(small.decode(&f, 0, Sampling::Mean).is_ok());
    // Oversized or misaligned segment lengths.
    for len in [u32::MAX - 3, 1 << 29, 1 << 28, 6] {
        let g = reheader(&f, |h| h.segment_lens[1] = len);
        assert!(dec.decode(&g, 0, Sampling::Mean).is_err(), "length {len}");
    }
    // A different picture size than the one encoded (valid CRC): the streams are read with
    // the wrong symbol counts. ANS decoding past the end is deterministic, so this may decode
    // to a wrong picture; it must not panic and must keep the header's size.
    for (w, h) in [(200, 64), (96, 1), (1, 1), (700, 300)] {
        let g = reheader(&f, |hd| {
            hd.width = w;
            hd.height = h;
        });
        if let Ok(d) = dec.decode(&g, 0, Sampling::Mean) {
            assert_eq!((d.image.width, d.image.height), (w, h));
        }
    }
    // Bad magic, version, flags.
    for (i, v) in [(0usize, 0x89u8), (3, b'D'), (4, 2), (5, 1)] {
        let mut g = f.clone();
        g[i] = v;
        let e = peek_frame(&g).unwrap_err().to_string();
        assert!(
            e.contains("SIC") || e.contains("version") || e.contains("flags"),
            "{e}"
        );
    }
    // crc32 is the usual one.
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
}

#[test]
fn bad_pictures_and_arguments() {
    let b = bundle();
    let mut enc = Encoder::new(b.clone());
    let img = synthetic(8, 8);
    let ok = as_ref(&img);
    assert!(enc.encode(ok, 1).is_ok());
    let cases: Vec<(&str, ImageRef<'_>, u8)> = vec![
        ("zero width", ImageRef { width: 0, ..ok }, 1),
        ("zero height", ImageRef { height: 0, ..ok }, 1),
        ("too wide", ImageRef { width: 16385, ..ok }, 1),
        (
            "short buffer",
            ImageRef {
                data: &img.data[..100],
                ..ok
            },
            1,
        ),
        ("small stride", ImageRef { stride: 20, ..ok }, 1),
        (
            "4-byte format on 3-byte data",
            ImageRef {
                format: PixelFormat::Rgba,
                ..ok
            },
            1,
        ),
        (
            "huge stride",
            ImageRef {
                stride: usize::MAX,
                ..ok
            },
            1,
        ),
        ("zero layers", ok, 0),
        ("too many layers", ok, b.levels() + 1),
    ];
    for (what, image, layers) in cases {
        match enc.encode(image, layers) {
            Err(Error::InvalidInput(m)) => eprintln!("{what}: {m}"),
            other => panic!("{what}: want InvalidInput, got {:?}", other.err()),
        }
    }
    let f = enc.encode(ok, 2).unwrap().bytes;
    assert!(matches!(thin(&f, 0), Err(Error::InvalidInput(_))));
    assert_eq!(thin(&f, 200).unwrap(), f);
}
