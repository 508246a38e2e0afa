// SPDX-License-Identifier: MIT OR Apache-2.0
//! What packet loss costs a SIC stream over RTP: GStreamer's generic `rtpgstpay` against
//! `rtpsicpay` (docs/rtp.md), on the same encoded frames, with `identity drop-probability`
//! losing packets at random between payloader and depayloader.
//!
//! ```sh
//! cargo run --release --example rtp_loss -- [file.sic] [loss-percent] [runs] [mtu]
//! ```
//! Without a file it encodes 60 frames of 320×240 `videotestsrc` first (8 layers). It prints,
//! per payloader, the frames sent, the valid frames delivered, how many of those lost layers, and
//! the mean layers per sent frame (a dropped frame counts 0), averaged over the runs.

use gst::prelude::*;
use gstsic::codec::bitstream;

fn run(desc: &str) -> Result<Vec<Vec<u8>>, Box<dyn std::error::Error>> {
    let pipeline = gst::parse::launch(desc)?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline")?;
    let sink = pipeline
        .by_name("out")
        .ok_or("no appsink")?
        .downcast::<gst_app::AppSink>()
        .map_err(|_| "not an appsink")?;
    pipeline.set_state(gst::State::Playing)?;
    let mut frames = Vec::new();
    while let Ok(sample) = sink.pull_sample() {
        if let Some(buf) = sample.buffer() {
            frames.push(buf.map_readable()?.to_vec());
        }
    }
    let bus = pipeline.bus().ok_or("no bus")?;
    let error = bus.pop_filtered(&[gst::MessageType::Error]);
    pipeline.set_state(gst::State::Null)?;
    if let Some(msg) = error
        && let gst::MessageView::Error(e) = msg.view()
    {
        return Err(format!("{} ({:?})", e.error(), e.debug()).into());
    }
    Ok(frames)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let file = args.next().filter(|a| !a.is_empty());
    let loss: f64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5.0);
    let runs: u32 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);
    let mtu: u32 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1400);

    gst::init()?;
    gstsic::plugin_register_static()?;

    let file = match file {
        Some(f) => f,
        None => {
            let path = std::env::temp_dir().join("sic-rtp-loss.sic");
            run(&format!(
                "videotestsrc num-buffers=60 ! video/x-raw,width=320,height=240,framerate=30/1 ! \
                 videoconvert ! sicenc ! tee name=t t. ! queue ! filesink location={} \
                 t. ! queue ! appsink name=out sync=false",
                path.display()
            ))?;
            path.display().to_string()
        }
    };
    let sent = run(&format!(
        "filesrc location={file} ! sicparse ! appsink name=out sync=false"
    ))?;
    let sent_layers: Vec<u8> = sent
        .iter()
        .map(|f| {
            bitstream::parse_header(f)
                .ok()
                .flatten()
                .map_or(0, |h| h.layers)
        })
        .collect();
    let full = sent_layers.iter().copied().max().unwrap_or(0);
    let bytes: usize = sent.iter().map(Vec::len).sum();
    println!(
        "{} frames, {:.0} bytes each on average, mtu {mtu}, {loss} % of packets lost, {runs} runs",
        sent.len(),
        bytes as f64 / sent.len() as f64
    );
    println!(
        "{:<12} {:>9} {:>10} {:>13} {:>16}",
        "payloader", "sent", "delivered", "fewer layers", "layers/sent frame"
    );
    for (pay, depay) in [("rtpgstpay", "rtpgstdepay"), ("rtpsicpay", "rtpsicdepay")] {
        let (mut delivered, mut salvaged, mut layers) = (0usize, 0usize, 0usize);
        for _ in 0..runs {
            let out = run(&format!(
                "filesrc location={file} ! sicparse ! {pay} mtu={mtu} ! \
                 identity drop-probability={} ! {depay} ! appsink name=out sync=false",
                loss / 100.0
            ))?;
            for frame in &out {
                // Only frames that pass the parser count; pictures are in sent order.
                if let Ok((header, _)) = bitstream::split_frame(frame) {
                    delivered += 1;
                    layers += usize::from(header.layers);
                    if header.layers < full {
                        salvaged += 1;
                    }
                }
            }
        }
        let per_run = |n: usize| n as f64 / f64::from(runs);
        println!(
            "{pay:<12} {:>9} {:>10.1} {:>13.1} {:>16.2}",
            sent.len(),
            per_run(delivered),
            per_run(salvaged),
            layers as f64 / (f64::from(runs) * sent.len() as f64)
        );
    }
    Ok(())
}
