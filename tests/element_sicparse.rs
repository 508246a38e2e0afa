// SPDX-License-Identifier: MIT OR Apache-2.0
//! `sicparse`, the typefinder and `siclayers`: framing, resync, caps, thinning.

mod sic_elements_util;

use gst::prelude::*;
use gst_base::prelude::*;
use sic_elements_util as util;

const PARSE_TO_SINK: &str = "appsrc name=src caps=video/x-sic ! sicparse ! tee name=t \
     t. ! queue ! appsink name=coded sync=false \
     t. ! queue ! sicdec ! appsink name=raw sync=false";

#[test]
fn frames_split_across_buffers_are_reassembled() {
    let frames = util::encode_frames(64, 48, 3, 2);
    let stream: Vec<u8> = frames.concat();
    // Odd-sized chunks that cut headers and payloads.
    let chunks: Vec<Vec<u8>> = stream.chunks(37).map(|c| c.to_vec()).collect();
    let run = util::run_with_appsrc(PARSE_TO_SINK, chunks);
    assert!(run.eos, "{:?}", run.error);
    assert_eq!(run.payloads("coded"), frames);
    for s in run.samples("coded") {
        assert!(
            !s.buffer()
                .unwrap()
                .flags()
                .contains(gst::BufferFlags::DELTA_UNIT)
        );
        let caps = s.caps().unwrap().structure(0).unwrap().to_owned();
        assert_eq!(caps.get::<i32>("width").unwrap(), 64);
        assert_eq!(caps.get::<i32>("layers").unwrap(), 2);
        assert_eq!(
            caps.get::<i32>("levels").unwrap(),
            i32::from(util::bundle().levels())
        );
        assert!(caps.get::<bool>("parsed").unwrap());
        assert_eq!(
            caps.get::<gst::Fraction>("framerate").unwrap(),
            gst::Fraction::new(0, 1)
        );
    }
    assert_eq!(run.samples("raw").len(), 3);
}

#[test]
fn resyncs_after_garbage() {
    let frames = util::encode_frames(64, 48, 3, 1);
    let mut garbage: Vec<u8> = (0..500u32).map(|i| (i * 31 % 251) as u8).collect();
    // Something that starts like a frame but is not one.
    garbage.extend_from_slice(&gstsic::codec::bitstream::MAGIC);
    garbage.extend_from_slice(&[9, 9, 9, 9]);
    let mut stream = garbage.clone();
    stream.extend_from_slice(&frames[0]);
    stream.extend_from_slice(&garbage);
    stream.extend_from_slice(&frames[1]);
    stream.extend_from_slice(&frames[2]);
    stream.extend_from_slice(&garbage[..100]);
    let run = util::run_with_appsrc(PARSE_TO_SINK, vec![stream]);
    assert!(run.eos, "{:?}", run.error);
    assert_eq!(run.payloads("coded"), frames);
    assert_eq!(run.samples("raw").len(), 3);
}

#[test]
fn garbage_only_is_a_clear_error() {
    let garbage: Vec<u8> = (0..20_000u32).map(|i| (i * 7919 % 256) as u8).collect();
    let chunks = garbage.chunks(4096).map(|c| c.to_vec()).collect();
    let run = util::run_with_appsrc(PARSE_TO_SINK, chunks);
    // BaseParse's own verdict at EOS when nothing could be framed.
    let err = run.error.clone().expect("an error at EOS");
    assert!(err.contains("No valid frames"), "{err}");
    assert!(run.samples("raw").is_empty());
}

#[test]
fn typefinder_recognises_sic_streams() {
    util::init();
    let frames = util::encode_frames(64, 48, 2, 2);
    let stream = frames.concat();
    let (caps, probability) =
        gst_base::functions::type_find_helper_for_data(None::<&gst::Object>, stream.as_slice())
            .unwrap();
    assert_eq!(caps.structure(0).unwrap().name(), "video/x-sic");
    assert_eq!(probability, gst::TypeFindProbability::Maximum);
    let not_sic = vec![0u8; 4096];
    let found = gst_base::functions::type_find_helper_for_data(None::<&gst::Object>, &not_sic);
    assert!(
        found
            .map(|(c, _)| c.structure(0).unwrap().name() != "video/x-sic")
            .unwrap_or(true)
    );
}

#[test]
fn siclayers_thins_headers_only() {
    util::init();
    let levels = util::bundle().levels();
    let frames = util::encode_frames(64, 48, 1, levels);
    let mut h = gst_check::Harness::new("siclayers");
    h.element().unwrap().set_property("layers", 2u32);
    h.set_src_caps_str(&format!(
        "video/x-sic,width=64,height=48,framerate=0/1,layers={levels},levels={levels},model=x"
    ));
    h.push(gst::Buffer::from_mut_slice(frames[0].clone()))
        .unwrap();
    let out = h.pull().unwrap();
    let map = out.map_readable().unwrap();
    assert_eq!(
        map.as_slice(),
        gstsic::codec::thin(&frames[0], 2).unwrap().as_slice()
    );
    let caps = h.sinkpad().unwrap().current_caps().unwrap();
    assert_eq!(caps.structure(0).unwrap().get::<i32>("layers").unwrap(), 2);

    // Corrupt input is dropped with a warning, never a crash.
    h.push(gst::Buffer::from_slice(b"garbage garbage garbage"))
        .unwrap();
    h.push(gst::Buffer::from_mut_slice(frames[0].clone()))
        .unwrap();
    assert_eq!(h.buffers_in_queue(), 1);
}

#[test]
fn siclayers_passthrough_when_nothing_to_drop() {
    util::init();
    let frames = util::encode_frames(64, 48, 1, 2);
    let mut h = gst_check::Harness::new("siclayers");
    h.element().unwrap().set_property("layers", 5u32);
    h.set_src_caps_str("video/x-sic,width=64,height=48,framerate=0/1,layers=2,levels=8,model=x");
    let input = gst::Buffer::from_mut_slice(frames[0].clone());
    h.push(input).unwrap();
    let out = h.pull().unwrap();
    assert_eq!(out.map_readable().unwrap().as_slice(), frames[0].as_slice());
    let t = h
        .element()
        .unwrap()
        .downcast::<gst_base::BaseTransform>()
        .unwrap();
    assert!(t.is_passthrough());
}

/// (pts, duration) of every buffer an appsink got, in milliseconds.
fn times_ms(samples: &[gst::Sample]) -> Vec<(u64, u64)> {
    samples
        .iter()
        .map(|s| {
            let b = s.buffer().unwrap();
            (
                b.pts().unwrap().mseconds(),
                b.duration().unwrap().mseconds(),
            )
        })
        .collect()
}

#[test]
fn framerate_property_times_untimed_streams() {
    let frames = util::encode_frames(64, 48, 3, 1);
    let chunks = vec![frames.concat()];
    let run = util::run_with_appsrc(
        "appsrc name=src caps=video/x-sic ! sicparse framerate=10/1 ! appsink name=coded sync=false",
        chunks.clone(),
    );
    assert!(run.eos, "{:?}", run.error);
    assert_eq!(run.payloads("coded"), frames);
    assert_eq!(
        times_ms(run.samples("coded")),
        [(0, 100), (100, 100), (200, 100)]
    );
    let caps = run.samples("coded")[0].caps().unwrap().to_owned();
    let s = caps.structure(0).unwrap();
    assert_eq!(
        s.get::<gst::Fraction>("framerate").unwrap(),
        gst::Fraction::new(10, 1)
    );

    // A rate in the upstream caps wins over the property.
    let run = util::run_with_appsrc(
        "appsrc name=src caps=video/x-sic,framerate=5/1 ! sicparse framerate=10/1 ! \
         appsink name=coded sync=false",
        chunks,
    );
    assert!(run.eos, "{:?}", run.error);
    assert_eq!(
        times_ms(run.samples("coded")),
        [(0, 200), (200, 200), (400, 200)]
    );
}

#[test]
fn seeks_in_a_timed_file() {
    let frames = util::encode_frames(64, 48, 12, 2);
    let path = util::scratch_dir("sicparse-seek").join("clip.sic");
    std::fs::write(&path, frames.concat()).unwrap();
    util::init();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location={} ! sicparse framerate=10/1 ! appsink name=coded sync=false",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline
        .by_name("coded")
        .unwrap()
        .downcast::<gst_app::AppSink>()
        .unwrap();
    pipeline.set_state(gst::State::Paused).unwrap();
    let (res, ..) = pipeline.state(gst::ClockTime::from_seconds(30));
    res.unwrap();
    pipeline
        .seek_simple(
            gst::SeekFlags::FLUSH | gst::SeekFlags::KEY_UNIT,
            gst::ClockTime::from_mseconds(700),
        )
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut got = Vec::new();
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(30)) {
        got.push(sample);
    }
    pipeline.set_state(gst::State::Null).unwrap();
    // Every frame is a sync point: the seek lands on frame 7 exactly, and on its bytes.
    assert_eq!(
        got.iter().map(util::sample_bytes).collect::<Vec<_>>(),
        frames[7..]
    );
    assert_eq!(times_ms(&got)[0], (700, 100));
}
