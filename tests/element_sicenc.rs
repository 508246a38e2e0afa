// SPDX-License-Identifier: MIT OR Apache-2.0
//! `sicenc` driven by gst-check's Harness: caps, sync points, negotiated layers, errors.

#[path = "codec_util/mod.rs"]
mod codec_util;
mod sic_elements_util;

use gst::prelude::*;
use sic_elements_util as util;

fn rgb_buffer(w: u32, h: u32, seed: u8, pts_ms: u64) -> gst::Buffer {
    let data: Vec<u8> = (0..(w * h * 3) as usize)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect();
    let mut buf = gst::Buffer::from_mut_slice(data);
    {
        let b = buf.get_mut().unwrap();
        b.set_pts(gst::ClockTime::from_mseconds(pts_ms));
        b.set_duration(gst::ClockTime::from_mseconds(100));
    }
    buf
}

fn encoder_harness(sink_caps: Option<&str>) -> gst_check::Harness {
    util::init();
    let mut h = gst_check::Harness::new("sicenc");
    if let Some(caps) = sink_caps {
        h.set_sink_caps_str(caps);
    }
    h.set_src_caps_str("video/x-raw,format=RGB,width=64,height=48,framerate=10/1");
    h
}

#[test]
fn caps_sync_points_and_all_layers() {
    let mut h = encoder_harness(None);
    let levels = util::bundle().levels();
    for i in 0..3 {
        h.push(rgb_buffer(64, 48, i, u64::from(i) * 100)).unwrap();
    }
    h.push_event(gst::event::Eos::new());
    for i in 0..3 {
        let buf = h.pull().unwrap();
        assert!(
            !buf.flags().contains(gst::BufferFlags::DELTA_UNIT),
            "frame {i} not a sync point"
        );
        assert_eq!(buf.pts(), Some(gst::ClockTime::from_mseconds(i * 100)));
        let map = buf.map_readable().unwrap();
        let info = gstsic::codec::peek_frame(&map).unwrap().unwrap();
        assert_eq!((info.width, info.height), (64, 48));
        assert_eq!(info.layers, levels);
        assert_eq!(info.frame_len, map.len());
    }
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    let s = caps.structure(0).unwrap();
    assert_eq!(s.name(), "video/x-sic");
    assert_eq!(s.get::<i32>("width").unwrap(), 64);
    assert_eq!(s.get::<i32>("height").unwrap(), 48);
    assert_eq!(s.get::<i32>("layers").unwrap(), i32::from(levels));
    assert_eq!(s.get::<i32>("levels").unwrap(), i32::from(levels));
    assert_eq!(
        s.get::<gst::Fraction>("framerate").unwrap(),
        gst::Fraction::new(10, 1)
    );
    assert_eq!(
        s.get::<&str>("model").unwrap(),
        util::bundle().model_id_hex()
    );
}

#[test]
fn downstream_caps_choose_layers() {
    // Downstream accepts 1..=3 layers: the encoder picks the most it may send.
    let mut h = encoder_harness(Some("video/x-sic,layers=(int)[1,3]"));
    h.push(rgb_buffer(64, 48, 1, 0)).unwrap();
    let buf = h.pull().unwrap();
    let map = buf.map_readable().unwrap();
    assert_eq!(gstsic::codec::peek_frame(&map).unwrap().unwrap().layers, 3);
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    assert_eq!(caps.structure(0).unwrap().get::<i32>("layers").unwrap(), 3);
}

#[test]
fn layers_property_caps_the_count() {
    let mut h = encoder_harness(None);
    h.element().unwrap().set_property("layers", 2u32);
    h.push(rgb_buffer(64, 48, 1, 0)).unwrap();
    let buf = h.pull().unwrap();
    let map = buf.map_readable().unwrap();
    assert_eq!(gstsic::codec::peek_frame(&map).unwrap().unwrap().layers, 2);
}

#[test]
fn other_rgb_layouts_and_odd_sizes() {
    util::init();
    for (format, bpp) in [("BGRx", 4u32), ("ARGB", 4), ("BGR", 3)] {
        let mut h = gst_check::Harness::new("sicenc");
        let (w, hgt) = (37u32, 5u32);
        h.set_src_caps_str(&format!(
            "video/x-raw,format={format},width={w},height={hgt},framerate=10/1"
        ));
        let stride = (w * bpp).div_ceil(4) * 4;
        let buf = gst::Buffer::from_mut_slice(vec![128u8; (stride * hgt) as usize]);
        h.push(buf).unwrap();
        let out = h.pull().unwrap();
        let map = out.map_readable().unwrap();
        let info = gstsic::codec::peek_frame(&map).unwrap().unwrap();
        assert_eq!((info.width, info.height), (w, hgt), "{format}");
    }
}

#[test]
fn unsatisfiable_layers_is_an_error() {
    let mut h = encoder_harness(Some("video/x-sic,layers=(int)99"));
    let ret = h.push(rgb_buffer(64, 48, 1, 0));
    assert!(ret.is_err(), "push should fail, got {ret:?}");
}

#[test]
fn bad_model_location_fails_in_start_naming_the_file() {
    util::init();
    let enc = gst::ElementFactory::make("sicenc")
        .property("model-location", "/nonexistent/sic-model")
        .build()
        .unwrap();
    let pipeline = gst::Pipeline::new();
    let sink = gst::ElementFactory::make("fakesink").build().unwrap();
    let src = gst::ElementFactory::make("videotestsrc").build().unwrap();
    pipeline.add_many([&src, &enc, &sink]).unwrap();
    gst::Element::link_many([&src, &enc, &sink]).unwrap();
    assert!(pipeline.set_state(gst::State::Paused).is_err());
    let bus = pipeline.bus().unwrap();
    let msg = bus
        .timed_pop_filtered(gst::ClockTime::from_seconds(5), &[gst::MessageType::Error])
        .expect("an error message");
    let gst::MessageView::Error(err) = msg.view() else {
        unreachable!()
    };
    let text = err.error().to_string();
    assert!(text.contains("/nonexistent/sic-model"), "{text}");
    pipeline.set_state(gst::State::Null).unwrap();
}

#[test]
fn rdo_lambda_applies_from_the_next_frame() {
    let mut h = encoder_harness(None);
    let enc = h.element().unwrap();
    let mut sizes = Vec::new();
    for (i, lambda) in [0.0f32, 0.5].into_iter().enumerate() {
        enc.set_property("rdo-lambda", lambda);
        h.push(rgb_buffer(64, 48, 1, 100 * i as u64)).unwrap();
        let buf = h.pull().unwrap();
        let map = buf.map_readable().unwrap();
        let info = gstsic::codec::peek_frame(&map).unwrap().unwrap();
        assert_eq!(info.frame_len, map.len());
        sizes.push(map.len());
    }
    assert!(
        sizes[1] < sizes[0],
        "rdo-lambda 0.5 gave {} B, 0 gave {} B",
        sizes[1],
        sizes[0]
    );
}

#[test]
fn properties_have_documented_defaults() {
    util::init();
    let enc = gst::ElementFactory::make("sicenc").build().unwrap();
    assert_eq!(enc.property::<u32>("layers"), 0);
    assert_eq!(enc.property::<u32>("target-bitrate"), 0);
    assert_eq!(
        enc.property::<f32>("rdo-lambda"),
        gstsic::codec::DEFAULT_RDO_LAMBDA
    );
    assert_eq!(enc.property::<String>("model-location"), "");
    assert_eq!(enc.property::<i32>("device-id"), 0);
    assert_eq!(enc.property::<u32>("threads"), 0);
    assert!(enc.property::<bool>("share-model"));
    assert_eq!(
        enc.property::<u32>("tile-size"),
        gstsic::codec::DEFAULT_TILE_SIZE
    );
    assert_eq!(
        enc.property::<gstsic::ExecutionProvider>("execution-provider"),
        gstsic::ExecutionProvider::Auto
    );
    for p in enc.list_properties() {
        assert!(
            !p.blurb().unwrap_or_default().is_empty(),
            "{} has no blurb",
            p.name()
        );
    }
}

#[test]
fn size_change_renegotiates() {
    let mut h = encoder_harness(None);
    h.push(rgb_buffer(64, 48, 1, 0)).unwrap();
    let _ = h.pull().unwrap();
    h.set_src_caps_str("video/x-raw,format=RGB,width=32,height=16,framerate=10/1");
    h.push(rgb_buffer(32, 16, 2, 100)).unwrap();
    let buf = h.pull().unwrap();
    let map = buf.map_readable().unwrap();
    let info = gstsic::codec::peek_frame(&map).unwrap().unwrap();
    assert_eq!((info.width, info.height), (32, 16));
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    let s = caps.structure(0).unwrap();
    assert_eq!(
        (
            s.get::<i32>("width").unwrap(),
            s.get::<i32>("height").unwrap()
        ),
        (32, 16)
    );
}

#[test]
fn more_layers_than_the_model_has_is_a_clear_error() {
    let levels = util::bundle().levels();
    let run = util::run_pipeline(
        &format!(
            "videotestsrc num-buffers=2 ! video/x-raw,width=64,height=48 ! videoconvert ! \
             sicenc ! video/x-sic,layers={} ! fakesink",
            levels + 1
        ),
        std::time::Duration::from_secs(60),
    );
    let err = run.error.expect("an error");
    assert!(err.contains("layers"), "{err}");
}

#[test]
fn tile_size_changes_memory_not_the_frame() {
    util::init();
    let (w, h) = (720, 464);
    // With a bundle that understates the analysis overlap, tiles show: that is how this test
    // sees the property reach the encoder at all.
    let understated = codec_util::scratch_bundle("sicenc-understated", "");
    codec_util::edit_json(&understated, |v| v["tiling"]["analysis_halo"] = 64.into());
    let encode = |tile: u32, model: &str| {
        // Both properties are read when the element starts, which the harness does at once:
        // set them before.
        let el = gst::ElementFactory::make("sicenc")
            .property("tile-size", tile)
            .property("model-location", model)
            .build()
            .unwrap();
        let mut hs = gst_check::Harness::with_element(&el, Some("sink"), Some("src"));
        hs.set_src_caps_str(&format!(
            "video/x-raw,format=RGB,width={w},height={h},framerate=10/1"
        ));
        hs.push(rgb_buffer(w, h, 3, 0)).unwrap();
        hs.pull().unwrap().map_readable().unwrap().to_vec()
    };
    let whole = encode(0, "");
    assert!(encode(128, "") == whole, "tiled frame differs");
    let understated = understated.to_str().unwrap();
    assert!(encode(0, understated) == whole);
    assert!(encode(128, understated) != whole, "tile-size had no effect");
}
