// SPDX-License-Identifier: MIT OR Apache-2.0
//! Switches the SIC level of a running pipeline by changing a capsfilter's caps, and prints the
//! per-frame `sic-frame-stats` messages of the encoder and the decoder.
//!
//! ```sh
//! cargo run --example level_switch -- [frames] [every]
//! ```
//! Levels cycle through 4, 1, 8 (clamped to the model's levels), changing every `every` frames.

use gst::prelude::*;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let frames: u32 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(30);
    let every: u32 = args
        .next()
        .map(|a| a.parse())
        .transpose()?
        .unwrap_or(10)
        .max(1);

    gst::init()?;
    gstsic::plugin_register_static()?;

    let pipeline = gst::parse::launch(&format!(
        "videotestsrc pattern=ball num-buffers={frames} ! \
         video/x-raw,width=160,height=120,framerate=10/1 ! videoconvert ! \
         sicenc ! capsfilter name=cf caps=video/x-sic,layers=4 ! \
         sicdec sampling=mean ! videoconvert ! fakesink"
    ))?
    .downcast::<gst::Pipeline>()
    .map_err(|_| "not a pipeline")?;
    let cf = pipeline.by_name("cf").ok_or("no capsfilter")?;

    let bus = pipeline.bus().ok_or("no bus")?;
    pipeline.set_state(gst::State::Playing)?;

    let schedule = [4, 1, 8];
    let mut levels = None;
    let mut decoded = 0u32;
    let result = loop {
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_seconds(60)) else {
            break Err("timed out waiting for the pipeline".into());
        };
        match msg.view() {
            gst::MessageView::Eos(_) => break Ok(()),
            gst::MessageView::Error(e) => {
                break Err(format!(
                    "error from {}: {} ({:?})",
                    e.src().map(|s| s.path_string()).unwrap_or_default(),
                    e.error(),
                    e.debug()
                ));
            }
            gst::MessageView::Warning(w) => eprintln!("warning: {}", w.error()),
            gst::MessageView::Element(e) => {
                let Some(s) = e.structure() else { continue };
                if s.name() != gstsic::FRAME_STATS_MESSAGE {
                    continue;
                }
                let src = e.src().map(|s| s.name().to_string()).unwrap_or_default();
                let n = s.get::<u64>("frame-number").unwrap_or(0);
                let layers = s.get::<u32>("layers").unwrap_or(0);
                let bytes = s.get::<u64>("bytes").unwrap_or(0);
                let ms = s.get::<f64>("time-total").unwrap_or(0.0) * 1e3;
                println!("{src:>8} frame {n:3}: {layers} layers, {bytes:6} bytes, {ms:7.1} ms");
                if src.starts_with("sicenc") {
                    let levels = *levels.get_or_insert(s.get::<u32>("levels").unwrap_or(8));
                    // Switch after every `every` encoded frames.
                    if (n + 1) % u64::from(every) == 0 {
                        let step = ((n + 1) / u64::from(every)) as usize;
                        let next = schedule[step % schedule.len()].min(levels);
                        println!("-- switching capsfilter to layers={next}");
                        cf.set_property(
                            "caps",
                            gst::Caps::builder("video/x-sic")
                                .field("layers", next as i32)
                                .build(),
                        );
                    }
                } else {
                    decoded += 1;
                }
            }
            _ => {}
        }
    };
    pipeline.set_state(gst::State::Null)?;
    result?;
    println!("decoded {decoded} frames");
    Ok(())
}
