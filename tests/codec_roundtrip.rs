//! Encode/decode round trips on the committed test photo: exact latent at every level,
//! thinning equals encoding at fewer layers, sampling modes.

mod codec_util;

use gstsic::codec::{Decoder, Encoder, Sampling, peek_frame, thin};

use codec_util::*;

#[test]
fn every_level_round_trips_exactly() {
    let b = bundle();
    let levels = b.levels();
    // 256x192 is already a multiple of 64: the latent is 16x12.
    let plane = (256 / 16) * (192 / 16);
    let photo = test_photo();
    let mut enc = Encoder::new(b.clone());
    let mut dec = Decoder::new(b.clone());

    let (full, full_latent) = enc.encode_with_latent(as_ref(&photo), levels).unwrap();
    assert_eq!(full.layer_sizes.len(), levels as usize);
    assert_eq!(*full.layer_sizes.last().unwrap(), full.bytes.len());
    assert!(full.layer_sizes.windows(2).all(|w| w[0] < w[1]));
    let info = peek_frame(&full.bytes).unwrap().unwrap();
    assert_eq!(
        (info.width, info.height, info.layers, info.levels),
        (256, 192, levels, levels)
    );
    assert_eq!(info.frame_len, full.bytes.len());
    assert_eq!(info.model_id, b.model_id());

    let mut psnrs = Vec::new();
    for k in 1..=levels {
        // Encoding at k layers gives exactly the thinned full frame.
        let (frame, latent) = enc.encode_with_latent(as_ref(&photo), k).unwrap();
        let thinned = thin(&full.bytes, k).unwrap();
        assert_eq!(
            frame.bytes, thinned,
            "thin(L -> {k}) differs from encoding at {k}"
        );
        assert_eq!(frame.bytes.len(), full.layer_sizes[k as usize - 1]);
        assert_eq!(frame.layer_sizes[..], full.layer_sizes[..k as usize]);
        let sent = b.slice_widths()[..k as usize].iter().sum::<usize>() * plane;
        assert_eq!(latent.len(), sent);
        assert_eq!(bits(&latent), bits(&full_latent[..sent]));

        // The decoder rebuilds the transmitted latent bit for bit.
        let (d, y_hat) = dec
            .decode_with_latent(&frame.bytes, 0, Sampling::Mean)
            .unwrap();
        assert_eq!(d.layers, k);
        assert_eq!((d.image.width, d.image.height), (256, 192));
        assert_eq!(y_hat.len(), b.latent_channels() * plane);
        assert_eq!(
            bits(&y_hat[..sent]),
            bits(&latent),
            "level {k}: latent differs"
        );

        // Decoding the full frame limited to k layers gives the same picture.
        let limited = dec.decode(&full.bytes, k, Sampling::Mean).unwrap();
        assert_eq!(limited.layers, k);
        assert_eq!(limited.image, d.image);

        let p = psnr(&photo, &d.image);
        eprintln!("level {k}: {} bytes, PSNR {p:.2} dB", frame.bytes.len());
        psnrs.push(p);
    }

    if model_is_trained() {
        // The trained bundle's contract with the user: every extra layer costs bytes and buys
        // quality (measured per level on the development photos in models/results/).
        for w in psnrs.windows(2) {
            assert!(w[1] > w[0], "PSNR must rise with every level: {psnrs:?}");
        }
        assert!(
            psnrs[levels as usize - 1] > psnrs[0] + 3.0,
            "the top level must be clearly better than level 1: {psnrs:?}"
        );
        assert!(
            psnrs[levels as usize - 1] > 28.0,
            "top-level PSNR too low: {psnrs:?}"
        );
    } else {
        eprintln!("model is untrained (training.steps = 0): PSNR-rises-with-level check skipped");
    }
}

#[test]
fn sampling_modes() {
    let b = bundle();
    let levels = b.levels();
    let img = synthetic(96, 64);
    let mut enc = Encoder::new(b.clone());
    let mut dec = Decoder::new(b.clone());
    let frame = enc.encode(as_ref(&img), 2).unwrap().bytes;

    let u1 = dec
        .decode(&frame, 0, Sampling::Uniform { seed: 1 })
        .unwrap();
    let u1b = dec
        .decode(&frame, 0, Sampling::Uniform { seed: 1 })
        .unwrap();
    let u2 = dec
        .decode(&frame, 0, Sampling::Uniform { seed: 2 })
        .unwrap();
    let (m, m_lat) = dec.decode_with_latent(&frame, 0, Sampling::Mean).unwrap();
    let (_, u_lat) = dec
        .decode_with_latent(&frame, 0, Sampling::Uniform { seed: 1 })
        .unwrap();
    assert_eq!(u1.image, u1b.image, "same seed, same picture");
    assert_eq!(u1.layers, 2);
    assert_ne!(
        bits(&m_lat),
        bits(&u_lat),
        "uniform sampling must change the untransmitted latent"
    );
    // Untransmitted slices differ from the mean by integers in -2..=2.
    // 96x64 needs no padding: the latent is 6x4.
    let sent = b.slice_widths()[..2].iter().sum::<usize>() * 6 * 4;
    assert_eq!(bits(&m_lat[..sent]), bits(&u_lat[..sent]));
    let _ = (u2, m);

    // At the full level nothing is sampled: every mode gives the same picture.
    let full = enc.encode(as_ref(&img), levels).unwrap().bytes;
    let a = dec.decode(&full, 0, Sampling::Mean).unwrap();
    let c = dec.decode(&full, 0, Sampling::Uniform { seed: 9 }).unwrap();
    assert_eq!(a.image, c.image);
    assert!(a.timing.total() > 0.0);
}

/// Rule 6 of docs/model.md: where g_s takes the level, a mean-filled decode tells it the
/// number of slices read and a sampled one the full level (the level modulation was trained
/// on mean fills only). Each picture must be g_s of the decoder's latent at that level and
/// not at the other one.
#[test]
fn synthesis_is_told_the_level_of_rule_6() {
    let json = std::fs::read_to_string(model_dir().join("model.json")).unwrap();
    let meta: serde_json::Value = serde_json::from_str(&json).unwrap();
    if meta["synthesis_inputs"] != serde_json::json!(["y_hat", "level"]) {
        eprintln!("the bundle's synthesis takes no level: nothing to check");
        return;
    }
    let b = bundle();
    let levels = b.levels();
    // 96x64 needs no padding: the latent is 6x4 and the picture the whole of g_s's output.
    let img = synthetic(96, 64);
    let (h, w) = (4, 6);
    let mut enc = Encoder::new(b.clone());
    let mut dec = Decoder::new(b.clone());
    let read = 3;
    let frame = enc.encode(as_ref(&img), read).unwrap().bytes;
    let synthesise = |y_hat: &[f32], level: u8| -> Vec<u8> {
        let shape = [1, y_hat.len() / (h * w), h, w];
        let out = b
            .run_graph(
                "synthesis",
                &[
                    ("y_hat", &shape, y_hat),
                    ("level", &[1], &[f32::from(level)]),
                ],
            )
            .unwrap();
        let x = &out[0].2;
        let plane = 16 * h * 16 * w;
        (0..plane * 3)
            .map(|i| (x[(i % 3) * plane + i / 3].clamp(0.0, 1.0) * 255.0).round_ties_even() as u8)
            .collect()
    };
    for (sampling, told, other) in [
        (Sampling::Mean, read, levels),
        (Sampling::Uniform { seed: 5 }, levels, read),
    ] {
        let (d, y_hat) = dec.decode_with_latent(&frame, 0, sampling).unwrap();
        assert!(d.image.data == synthesise(&y_hat, told), "{sampling:?}");
        assert!(d.image.data != synthesise(&y_hat, other), "{sampling:?}");
    }
}

#[test]
fn odd_sizes_round_trip() {
    let b = bundle();
    let mut enc = Encoder::new(b.clone());
    let mut dec = Decoder::new(b.clone());
    for (w, h) in [(1, 1), (3, 5), (65, 17), (64, 64), (130, 1)] {
        let img = synthetic(w, h);
        let (f, lat) = enc.encode_with_latent(as_ref(&img), 3).unwrap();
        let (d, y_hat) = dec.decode_with_latent(&f.bytes, 0, Sampling::Mean).unwrap();
        assert_eq!((d.image.width, d.image.height), (w, h));
        assert_eq!(d.image.data.len(), (w * h * 3) as usize);
        assert_eq!(bits(&y_hat[..lat.len()]), bits(&lat), "{w}x{h}");
    }
}

#[test]
fn peek_walks_a_stream_of_frames() {
    let b = bundle();
    let mut enc = Encoder::new(b.clone());
    let frames: Vec<Vec<u8>> = [(96, 64, 1), (33, 80, 4), (64, 64, b.levels())]
        .iter()
        .map(|&(w, h, k)| enc.encode(as_ref(&synthetic(w, h)), k).unwrap().bytes)
        .collect();
    let stream = frames.concat();
    let mut at = 0;
    let mut seen = Vec::new();
    while at < stream.len() {
        let info = peek_frame(&stream[at..]).unwrap().unwrap();
        seen.push((info.width, info.height, info.layers));
        assert_eq!(
            &stream[at..at + info.frame_len],
            &frames[seen.len() - 1][..]
        );
        at += info.frame_len;
    }
    assert_eq!(seen, vec![(96, 64, 1), (33, 80, 4), (64, 64, b.levels())]);
}
