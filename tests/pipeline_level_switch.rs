// SPDX-License-Identifier: MIT OR Apache-2.0
//! Run-time level changes (capsfilter caps while PLAYING) and rate control by truncation.

mod sic_elements_util;

use std::time::Duration;

use gst::prelude::*;
use sic_elements_util::{self as util, H, W};

const T: Duration = Duration::from_secs(120);

#[test]
fn capsfilter_switch_while_playing() {
    const N: usize = 10;
    const SWITCH_AFTER: usize = 3;
    let run = util::run_pipeline_with(
        &format!(
            "videotestsrc pattern=ball num-buffers={N} ! \
             video/x-raw,format=RGB,width={W},height={H},framerate=10/1 ! \
             sicenc ! capsfilter name=cf caps=video/x-sic,layers=4 ! tee name=t \
             t. ! queue ! appsink name=coded sync=false \
             t. ! queue ! sicdec ! appsink name=raw sync=false"
        ),
        T,
        |pipeline, sink, index| {
            if sink == "coded" && index == SWITCH_AFTER {
                let cf = pipeline.by_name("cf").unwrap();
                cf.set_property(
                    "caps",
                    gst::Caps::builder("video/x-sic").field("layers", 1).build(),
                );
            }
        },
    );
    assert!(run.eos, "no EOS: {:?}", run.error);
    let coded = run.samples("coded");
    assert_eq!(coded.len(), N);
    let layers: Vec<u8> = coded.iter().map(util::sample_layers).collect();
    eprintln!("layers per frame: {layers:?}");
    // Frames up to the switch carry 4 layers; the stream follows within a frame or two.
    assert!(
        layers[..=SWITCH_AFTER].iter().all(|&l| l == 4),
        "{layers:?}"
    );
    assert!(
        layers[SWITCH_AFTER + 2..].iter().all(|&l| l == 1),
        "{layers:?}"
    );
    // Caps travel with the frames.
    for (s, &l) in coded.iter().zip(&layers) {
        assert_eq!(util::caps_layers(s), i32::from(l));
    }
    // The decoder saw the same counts.
    let dec: Vec<u32> = run
        .stats_of("sicdec")
        .iter()
        .map(|s| s.get::<u32>("layers").unwrap())
        .collect();
    assert_eq!(
        dec,
        layers.iter().map(|&l| u32::from(l)).collect::<Vec<_>>()
    );
    assert_eq!(run.samples("raw").len(), N);
}

#[test]
fn encoder_layers_property_while_playing() {
    const N: usize = 6;
    let run = util::run_pipeline_with(
        &format!(
            "videotestsrc pattern=ball num-buffers={N} ! \
             video/x-raw,format=RGB,width={W},height={H},framerate=10/1 ! \
             sicenc name=enc ! appsink name=coded sync=false"
        ),
        T,
        |pipeline, _, index| {
            if index == 1 {
                pipeline
                    .by_name("enc")
                    .unwrap()
                    .set_property("layers", 2u32);
            }
        },
    );
    assert!(run.eos, "{:?}", run.error);
    let layers: Vec<u8> = run
        .samples("coded")
        .iter()
        .map(util::sample_layers)
        .collect();
    assert_eq!(layers[0], util::bundle().levels());
    assert!(layers[3..].iter().all(|&l| l == 2), "{layers:?}");
}

/// Average bits of the frames at 10 fps.
fn bitrate(run: &util::Run) -> f64 {
    let frames = run.samples("coded");
    let bytes: usize = frames.iter().map(|s| s.buffer().unwrap().size()).sum();
    bytes as f64 * 8.0 * 10.0 / frames.len() as f64
}

#[test]
fn target_bitrate_by_truncation() {
    const N: usize = 8;
    let desc = |bitrate: u32| {
        format!(
            "videotestsrc pattern=smpte num-buffers={N} ! \
             video/x-raw,format=RGB,width={W},height={H},framerate=10/1 ! \
             sicenc target-bitrate={bitrate} ! appsink name=coded sync=false"
        )
    };
    // Layer sizes without rate control.
    let free = util::run_pipeline(&desc(0), T);
    assert!(free.eos, "{:?}", free.error);
    let sizes: Vec<u64> = free.stats_of("sicenc")[0]
        .get::<gst::Array>("layer-bytes")
        .unwrap()
        .iter()
        .map(|v| v.get::<u64>().unwrap())
        .collect();
    assert!(sizes.len() >= 3, "{sizes:?}");
    // A budget halfway between 2 and 3 layers per frame.
    let target = ((sizes[1] + sizes[2]) as f64 / 2.0 * 8.0 * 10.0) as u32;
    let run = util::run_pipeline(&desc(target), T);
    assert!(run.eos, "{:?}", run.error);
    let got = bitrate(&run);
    eprintln!("layer sizes {sizes:?}, target {target} bit/s, got {got:.0} bit/s");
    assert!(
        (got - f64::from(target)).abs() <= 0.1 * f64::from(target),
        "bitrate {got:.0} not within 10% of {target}"
    );
    assert!(run.warnings.is_empty(), "{:?}", run.warnings);

    // Below one layer: one layer per frame and a warning (once).
    let starved = util::run_pipeline(&desc(1000), T);
    assert!(starved.eos, "{:?}", starved.error);
    assert!(
        starved
            .samples("coded")
            .iter()
            .all(|s| util::sample_layers(s) == 1)
    );
    assert_eq!(starved.warnings.len(), 1, "{:?}", starved.warnings);
    assert!(
        starved.warnings[0].contains("target-bitrate"),
        "{:?}",
        starved.warnings
    );
}
