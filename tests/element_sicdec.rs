// SPDX-License-Identifier: MIT OR Apache-2.0
//! `sicdec`: output negotiation, size changes, max-layers, seeds, hostile input.

#[path = "codec_util/mod.rs"]
mod codec_util;
mod sic_elements_util;

use gst::prelude::*;
use gst_video::prelude::*;
use sic_elements_util as util;

fn decoder_harness(props: &[(&str, glib::Value)]) -> gst_check::Harness {
    util::init();
    let mut h = gst_check::Harness::new("sicdec");
    for (name, value) in props {
        h.element().unwrap().set_property_from_value(name, value);
    }
    h.set_src_caps_str("video/x-sic");
    h
}

use gst::glib;

fn push_frame(
    h: &mut gst_check::Harness,
    bytes: &[u8],
    pts_ms: u64,
) -> Result<gst::FlowSuccess, gst::FlowError> {
    let mut buf = gst::Buffer::from_mut_slice(bytes.to_vec());
    buf.get_mut()
        .unwrap()
        .set_pts(gst::ClockTime::from_mseconds(pts_ms));
    h.push(buf)
}

fn out_caps(h: &gst_check::Harness) -> gst_video::VideoInfo {
    gst_video::VideoInfo::from_caps(&h.sinkpad().unwrap().current_caps().unwrap()).unwrap()
}

#[test]
fn decodes_and_follows_size_changes() {
    let mut h = decoder_harness(&[]);
    let a = util::encode_frames(64, 48, 1, 2);
    let b = util::encode_frames(33, 17, 1, 2);
    push_frame(&mut h, &a[0], 0).unwrap();
    let out = h.pull().unwrap();
    let info = out_caps(&h);
    assert_eq!((info.width(), info.height()), (64, 48));
    assert_eq!(
        info.format(),
        gst_video::VideoFormat::Rgb,
        "RGB is preferred"
    );
    assert!(out.size() >= 64 * 48 * 3);

    push_frame(&mut h, &b[0], 100).unwrap();
    let _ = h.pull().unwrap();
    let info = out_caps(&h);
    assert_eq!((info.width(), info.height()), (33, 17));
}

#[test]
fn negotiates_downstream_format_with_stride() {
    let mut h = decoder_harness(&[]);
    h.set_sink_caps_str("video/x-raw,format=BGRx");
    let frames = util::encode_frames(30, 20, 1, 3);
    push_frame(&mut h, &frames[0], 0).unwrap();
    let buf = h.pull().unwrap();
    let info = out_caps(&h);
    assert_eq!(info.format(), gst_video::VideoFormat::Bgrx);
    assert_eq!(buf.size(), info.size());
    // The same picture as the codec core's RGB output (sampling=model default is seeded 0).
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buf.as_ref(), &info).unwrap();
    let stride = frame.plane_stride()[0] as usize;
    let px = frame.plane_data(0).unwrap();
    assert_eq!(px[stride + 3], 255, "padding byte filled");
}

#[test]
fn max_layers_and_mean_match_the_codec_core() {
    let mut h = decoder_harness(&[
        ("max-layers", 1u32.to_value()),
        ("sampling", gstsic::SamplingMode::Mean.to_value()),
    ]);
    let frames = util::encode_frames(64, 48, 1, util::bundle().levels());
    push_frame(&mut h, &frames[0], 0).unwrap();
    let buf = h.pull().unwrap();
    let mut dec = gstsic::codec::Decoder::new(util::bundle());
    let core = dec
        .decode(
            &gstsic::codec::thin(&frames[0], 1).unwrap(),
            0,
            gstsic::codec::Sampling::Mean,
        )
        .unwrap();
    assert_eq!(core.layers, 1);
    let map = buf.map_readable().unwrap();
    assert_eq!(&map[..core.image.data.len()], core.image.data.as_slice());
}

#[test]
fn seed_reproduces_uniform_sampling() {
    let frames = util::encode_frames(64, 48, 2, 1);
    let decode_all = |seed: u64| {
        let mut h = decoder_harness(&[
            ("sampling", gstsic::SamplingMode::Uniform.to_value()),
            ("seed", seed.to_value()),
        ]);
        frames
            .iter()
            .enumerate()
            .map(|(i, f)| {
                push_frame(&mut h, f, i as u64 * 100).unwrap();
                h.pull().unwrap().map_readable().unwrap().to_vec()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(decode_all(7), decode_all(7));
}

/// Decodes `frames` (at 0, 100, 200 ... ms), telling the decoder after the first one that
/// downstream runs 150 ms late at 0 ms, so wants nothing before 0 + 2 × 150 ms (plus a frame
/// duration, none here: no framerate). Returns the pictures, how many frames were decoded (each
/// posts `sic-frame-stats`) and how many QoS drops were reported.
fn decode_while_late(
    frames: &[Vec<u8>],
    props: &[(&str, glib::Value)],
) -> (Vec<gst::Buffer>, usize, usize) {
    let mut h = decoder_harness(props);
    let bus = gst::Bus::new();
    h.element().unwrap().set_bus(Some(&bus));
    for (i, f) in frames.iter().enumerate() {
        push_frame(&mut h, f, i as u64 * 100).unwrap();
        if i == 0 {
            let late = gst::event::Qos::new(
                gst::QOSType::Underflow,
                1.0,
                150_000_000,
                gst::ClockTime::ZERO,
            );
            assert!(h.push_upstream_event(late));
        }
    }
    h.push_event(gst::event::Eos::new());
    let out = std::iter::from_fn(|| h.try_pull()).collect();
    let messages: Vec<_> = std::iter::from_fn(|| bus.pop()).collect();
    let count = |t: gst::MessageType| messages.iter().filter(|m| m.type_() == t).count();
    (
        out,
        count(gst::MessageType::Element),
        count(gst::MessageType::Qos),
    )
}

/// QoS: frames whose deadline has passed are skipped before any network runs and reported as
/// QoS drops. The next frame in time decodes exactly as it would have without the drops (its
/// sampling seed does not depend on timing). `qos=false` decodes and outputs every frame.
#[test]
fn late_frames_are_skipped_before_decoding() {
    let frames = util::encode_frames(64, 48, 4, 2);
    let uniform = ("sampling", gstsic::SamplingMode::Uniform.to_value());
    let seed = ("seed", 3u64.to_value());
    let qos_off = ("qos", false.to_value());

    let (all, decoded, drops) =
        decode_while_late(&frames, &[uniform.clone(), seed.clone(), qos_off]);
    assert_eq!((all.len(), decoded, drops), (4, 4, 0));

    let (out, decoded, drops) = decode_while_late(&frames, &[uniform, seed]);
    let pts: Vec<_> = out.iter().map(|b| b.pts().unwrap().mseconds()).collect();
    assert_eq!(pts, [0, 300]);
    assert_eq!((decoded, drops), (2, 2));
    assert_eq!(
        out[1].map_readable().unwrap().as_slice(),
        all[3].map_readable().unwrap().as_slice()
    );
}

#[test]
fn corrupt_frames_are_dropped_not_fatal() {
    let mut h = decoder_harness(&[]);
    let frames = util::encode_frames(64, 48, 2, 2);
    push_frame(&mut h, &frames[0], 0).unwrap();
    // Garbage, a truncated frame and a frame with a broken payload.
    push_frame(&mut h, b"definitely not a SIC frame", 100).unwrap();
    push_frame(&mut h, &frames[1][..frames[1].len() / 2], 200).unwrap();
    let mut broken = frames[1].clone();
    let n = broken.len();
    for b in &mut broken[n - 8..] {
        *b ^= 0x5A;
    }
    // A broken payload may decode to noise or be rejected; either way no crash, no error.
    let _ = push_frame(&mut h, &broken, 300);
    push_frame(&mut h, &frames[1], 400).unwrap();
    h.push_event(gst::event::Eos::new());
    let mut pts = Vec::new();
    while let Some(buf) = h.try_pull() {
        pts.push(buf.pts().unwrap().mseconds());
    }
    assert_eq!(pts.first(), Some(&0));
    assert_eq!(pts.last(), Some(&400));
    assert!(!pts.contains(&100) && !pts.contains(&200), "{pts:?}");
}

/// Pushes a 32x24 frame, a 64x48 one and a 32x24 one again (pts 0, 100, 200), then EOS.
/// Returns the pts of the pictures that came out and the sizes of the caps events, in order.
fn push_small_big_small(h: &mut gst_check::Harness) -> (Vec<u64>, Vec<(u32, u32)>) {
    let small = util::encode_frames(32, 24, 1, 1);
    let big = util::encode_frames(64, 48, 1, 1);
    push_frame(h, &small[0], 0).unwrap();
    push_frame(h, &big[0], 100).unwrap();
    push_frame(h, &small[0], 200).unwrap();
    h.push_event(gst::event::Eos::new());
    let mut pts = Vec::new();
    while let Some(buf) = h.try_pull() {
        pts.push(buf.pts().unwrap().mseconds());
    }
    let mut sizes = Vec::new();
    while let Some(ev) = h.try_pull_event() {
        if let gst::EventView::Caps(c) = ev.view() {
            let info = gst_video::VideoInfo::from_caps(c.caps()).unwrap();
            sizes.push((info.width(), info.height()));
        }
    }
    (pts, sizes)
}

#[test]
fn frame_bigger_than_the_caps_announce_is_dropped() {
    util::init();
    let mut h = gst_check::Harness::new("sicdec");
    h.set_src_caps_str("video/x-sic,width=32,height=24");
    // The big frame declares 4x the area the caps allow: refused before any network runs, not
    // fatal, and its header must not renegotiate the output (a fixed-size downstream would
    // fail with not-negotiated over one bad frame).
    let (pts, sizes) = push_small_big_small(&mut h);
    assert_eq!(pts, [0, 200]);
    assert_eq!(sizes, [(32, 24)]);
}

#[test]
fn frame_above_max_pixels_is_dropped() {
    // No size in the caps, so only max-pixels stands between the header and the networks.
    let mut h = decoder_harness(&[("max-pixels", (32u64 * 24).to_value())]);
    let (pts, sizes) = push_small_big_small(&mut h);
    assert_eq!(pts, [0, 200]);
    assert_eq!(sizes, [(32, 24)]);
}

#[test]
fn caps_above_max_pixels_are_refused_with_a_hint() {
    util::init();
    let run = util::run_with_appsrc(
        "appsrc name=src caps=video/x-sic,width=64,height=48 ! sicdec max-pixels=1000 \
         ! appsink name=raw sync=false",
        util::encode_frames(64, 48, 1, 1),
    );
    assert!(run.samples("raw").is_empty());
    let err = run.error.expect("an error");
    assert!(err.contains("max-pixels"), "{err}");
}

#[test]
fn refused_caps_post_one_error_not_one_per_buffer() {
    let mut h = decoder_harness(&[("max-pixels", 1000u64.to_value())]);
    let bus = gst::Bus::new();
    h.element().unwrap().set_bus(Some(&bus));
    h.set_src_caps_str("video/x-sic,width=64,height=48");
    let frames = util::encode_frames(64, 48, 3, 1);
    for (i, f) in frames.iter().enumerate() {
        assert!(push_frame(&mut h, f, 100 * i as u64).is_err());
    }
    let errors: Vec<String> = std::iter::from_fn(|| bus.pop())
        .filter_map(|m| match m.view() {
            gst::MessageView::Error(e) => Some(e.error().to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("max-pixels"), "{errors:?}");
}

#[test]
fn frame_from_another_model_is_an_error() {
    let mut h = decoder_harness(&[]);
    let frames = util::encode_frames(64, 48, 1, 2);
    let ret = push_frame(&mut h, &util::with_other_model_id(&frames[0]), 0);
    assert!(ret.is_err(), "{ret:?}");

    // Through a parser: the caps carry the foreign id, the decoder refuses with a message.
    let run = util::run_with_appsrc(
        "appsrc name=src caps=video/x-sic ! sicparse ! sicdec ! fakesink",
        vec![util::with_other_model_id(&frames[0])],
    );
    let err = run.error.expect("an error");
    assert!(err.contains("model"), "{err}");
}

#[test]
fn properties_have_documented_defaults() {
    util::init();
    let dec = gst::ElementFactory::make("sicdec").build().unwrap();
    assert_eq!(dec.property::<u32>("max-layers"), 0);
    assert_eq!(dec.property::<u64>("seed"), 0);
    assert_eq!(dec.property::<u64>("max-pixels"), 1 << 24);
    assert!(dec.property::<bool>("share-model"));
    assert_eq!(
        dec.property::<u32>("tile-size"),
        gstsic::codec::DEFAULT_TILE_SIZE
    );
    assert_eq!(
        dec.property::<gstsic::SamplingMode>("sampling"),
        gstsic::SamplingMode::Model
    );
    for p in dec.list_properties() {
        assert!(
            !p.blurb().unwrap_or_default().is_empty(),
            "{} has no blurb",
            p.name()
        );
    }
}

#[test]
fn tile_size_changes_memory_not_the_picture() {
    util::init();
    let frame = util::encode_frames(720, 464, 1, 8).remove(0);
    // With a bundle that understates g_s's overlap, tiles show: that is how this test sees the
    // property reach the decoder at all.
    let understated = codec_util::scratch_bundle("sicdec-understated", "");
    codec_util::edit_json(&understated, |v| v["tiling"]["synthesis_halo"] = 1.into());
    let decode = |tile: u32, model: &str| {
        // Both properties are read when the element starts, which the harness does at once:
        // set them before.
        let el = gst::ElementFactory::make("sicdec")
            .property("tile-size", tile)
            .property("model-location", model)
            .build()
            .unwrap();
        // Rounded up to a multiple of 64 (100 -> 128): tiles of 8 x 8 latent positions.
        assert_eq!(el.property::<u32>("tile-size"), tile.next_multiple_of(64));
        let mut h = gst_check::Harness::with_element(&el, Some("sink"), Some("src"));
        h.set_src_caps_str("video/x-sic");
        push_frame(&mut h, &frame, 0).unwrap();
        h.pull().unwrap().map_readable().unwrap().to_vec()
    };
    let whole = decode(0, "");
    assert_eq!(whole.len(), 720 * 464 * 3);
    assert!(decode(100, "") == whole, "tiled picture differs");
    let understated = understated.to_str().unwrap();
    assert!(decode(0, understated) == whole);
    assert!(decode(100, understated) != whole, "tile-size had no effect");
}
