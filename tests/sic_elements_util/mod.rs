// SPDX-License-Identifier: MIT OR Apache-2.0
//! Helpers shared by the element and pipeline tests.
#![allow(dead_code)]

use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use gst::prelude::*;
use gst_video::prelude::*;

static INIT: Once = Once::new();

pub fn init() {
    INIT.call_once(|| {
        gst::init().unwrap();
        gstsic::plugin_register_static().expect("register sic plugin");
    });
}

/// Small test pictures: keep debug builds on 2 cores fast.
pub const W: u32 = 128;
pub const H: u32 = 96;

/// What a pipeline run produced.
#[derive(Default)]
pub struct Run {
    /// Samples per appsink, by appsink name.
    pub samples: std::collections::HashMap<String, Vec<gst::Sample>>,
    /// `sic-frame-stats` structures with the name of the element that posted them.
    pub stats: Vec<(String, gst::Structure)>,
    pub warnings: Vec<String>,
    pub error: Option<String>,
    pub eos: bool,
}

impl Run {
    pub fn samples(&self, sink: &str) -> &[gst::Sample] {
        self.samples.get(sink).map(|v| v.as_slice()).unwrap_or(&[])
    }

    /// The bytes of every buffer that reached appsink `sink`, in order.
    pub fn payloads(&self, sink: &str) -> Vec<Vec<u8>> {
        self.samples(sink).iter().map(sample_bytes).collect()
    }

    pub fn stats_of(&self, prefix: &str) -> Vec<&gst::Structure> {
        self.stats
            .iter()
            .filter(|(src, _)| src.starts_with(prefix))
            .map(|(_, s)| s)
            .collect()
    }
}

/// Runs a `gst-launch`-style pipeline to EOS or error (or `timeout`), collecting every buffer of
/// each appsink (they must be named) and the bus messages.
pub fn run_pipeline(desc: &str, timeout: Duration) -> Run {
    run_pipeline_with(desc, timeout, |_, _, _| {})
}

/// Like [`run_pipeline`]; `on_sample(pipeline, sink name, index)` runs in the streaming thread
/// after each sample is stored.
pub fn run_pipeline_with<F>(desc: &str, timeout: Duration, on_sample: F) -> Run
where
    F: Fn(&gst::Pipeline, &str, usize) + Send + Sync + 'static,
{
    run_pipeline_setup(desc, timeout, |_| {}, on_sample)
}

/// Feeds `chunks` through the appsrc named `src`, then EOS, and runs the pipeline.
pub fn run_with_appsrc(desc: &str, chunks: Vec<Vec<u8>>) -> Run {
    let chunks = Mutex::new(chunks.into_iter());
    run_pipeline_setup(
        desc,
        Duration::from_secs(60),
        move |pipeline| {
            let appsrc = pipeline
                .by_name("src")
                .unwrap()
                .downcast::<gst_app::AppSrc>()
                .unwrap();
            appsrc.set_callbacks(
                gst_app::AppSrcCallbacks::builder()
                    .need_data(move |src, _| match chunks.lock().unwrap().next() {
                        Some(c) => {
                            let _ = src.push_buffer(gst::Buffer::from_mut_slice(c));
                        }
                        None => {
                            let _ = src.end_of_stream();
                        }
                    })
                    .build(),
            );
        },
        |_, _, _| {},
    )
}

/// The general form: `setup` runs on the pipeline before it starts.
pub fn run_pipeline_setup<S, F>(desc: &str, timeout: Duration, setup: S, on_sample: F) -> Run
where
    S: FnOnce(&gst::Pipeline),
    F: Fn(&gst::Pipeline, &str, usize) + Send + Sync + 'static,
{
    init();
    let pipeline = gst::parse::launch(desc)
        .unwrap_or_else(|e| panic!("parse {desc}: {e}"))
        .downcast::<gst::Pipeline>()
        .unwrap();
    setup(&pipeline);
    let collected: Arc<Mutex<std::collections::HashMap<String, Vec<gst::Sample>>>> = Arc::default();
    let on_sample = Arc::new(on_sample);
    let weak = pipeline.downgrade();
    for element in pipeline.iterate_recurse().into_iter().flatten() {
        let Ok(appsink) = element.downcast::<gst_app::AppSink>() else {
            continue;
        };
        let name = appsink.name().to_string();
        let collected = collected.clone();
        let on_sample = on_sample.clone();
        let weak = weak.clone();
        appsink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let index = {
                        let mut map = collected.lock().unwrap();
                        let v = map.entry(name.clone()).or_default();
                        v.push(sample);
                        v.len() - 1
                    };
                    if let Some(p) = weak.upgrade() {
                        on_sample(&p, &name, index);
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    }

    let mut run = Run::default();
    let bus = pipeline.bus().unwrap();
    if pipeline.set_state(gst::State::Playing).is_err() {
        // The error message says why.
        while let Some(msg) = bus.timed_pop_filtered(
            gst::ClockTime::from_mseconds(500),
            &[gst::MessageType::Error],
        ) {
            if let gst::MessageView::Error(e) = msg.view() {
                run.error = Some(format_error(e));
                break;
            }
        }
        if run.error.is_none() {
            run.error = Some("state change to PLAYING failed".into());
        }
        let _ = pipeline.set_state(gst::State::Null);
        return run;
    }
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(left.as_millis() as u64))
        else {
            break;
        };
        match msg.view() {
            gst::MessageView::Eos(_) => {
                run.eos = true;
                break;
            }
            gst::MessageView::Error(e) => {
                run.error = Some(format_error(e));
                break;
            }
            gst::MessageView::Warning(w) => {
                run.warnings.push(format!(
                    "{}: {} ({:?})",
                    w.src()
                        .map(|s| s.path_string().to_string())
                        .unwrap_or_default(),
                    w.error(),
                    w.debug()
                ));
            }
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure()
                    && s.name() == gstsic::FRAME_STATS_MESSAGE
                {
                    let src = e.src().map(|s| s.name().to_string()).unwrap_or_default();
                    run.stats.push((src, s.to_owned()));
                }
            }
            _ => {}
        }
    }
    pipeline.set_state(gst::State::Null).unwrap();
    // Element messages posted just before EOS may still be queued.
    while let Some(msg) = bus.pop() {
        if let gst::MessageView::Element(e) = msg.view()
            && let Some(s) = e.structure()
            && s.name() == gstsic::FRAME_STATS_MESSAGE
        {
            let src = e.src().map(|s| s.name().to_string()).unwrap_or_default();
            run.stats.push((src, s.to_owned()));
        }
    }
    run.samples = std::mem::take(&mut *collected.lock().unwrap());
    run
}

fn format_error(e: &gst::message::Error) -> String {
    format!(
        "{}: {} ({:?})",
        e.src()
            .map(|s| s.path_string().to_string())
            .unwrap_or_default(),
        e.error(),
        e.debug()
    )
}

/// The bytes of a sample's buffer.
pub fn sample_bytes(sample: &gst::Sample) -> Vec<u8> {
    sample.buffer().unwrap().map_readable().unwrap().to_vec()
}

/// Layers carried by a compressed sample (from its frame header).
pub fn sample_layers(sample: &gst::Sample) -> u8 {
    gstsic::codec::peek_frame(&sample_bytes(sample))
        .unwrap()
        .unwrap()
        .layers
}

/// `layers` field of a sample's caps.
pub fn caps_layers(sample: &gst::Sample) -> i32 {
    sample
        .caps()
        .unwrap()
        .structure(0)
        .unwrap()
        .get::<i32>("layers")
        .unwrap()
}

/// Packed RGB rows of a raw RGB sample (stride removed).
pub fn rgb_pixels(sample: &gst::Sample) -> (u32, u32, Vec<u8>) {
    let info = gst_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
    assert_eq!(
        info.format(),
        gst_video::VideoFormat::Rgb,
        "expected RGB samples"
    );
    let buffer = sample.buffer().unwrap();
    let frame = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info).unwrap();
    let stride = frame.plane_stride()[0] as usize;
    let data = frame.plane_data(0).unwrap();
    let row = info.width() as usize * 3;
    let mut out = Vec::with_capacity(row * info.height() as usize);
    for y in 0..info.height() as usize {
        out.extend_from_slice(&data[y * stride..y * stride + row]);
    }
    (info.width(), info.height(), out)
}

/// PSNR in dB between two 8-bit pictures of the same size.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    gstsic::codec::psnr(a, b)
}

/// Source frames of `videotestsrc pattern=<pattern>` as packed RGB (W x H).
pub fn source_frames(pattern: &str, n: usize) -> Vec<Vec<u8>> {
    let run = run_pipeline(
        &format!(
            "videotestsrc pattern={pattern} num-buffers={n} ! \
             video/x-raw,format=RGB,width={W},height={H},framerate=10/1 ! appsink name=sink sync=false"
        ),
        Duration::from_secs(30),
    );
    assert!(run.error.is_none(), "{:?}", run.error);
    run.samples("sink")
        .iter()
        .map(|s| rgb_pixels(s).2)
        .collect()
}

/// The default model bundle, loaded through the codec API.
pub fn bundle() -> Arc<gstsic::codec::Bundle> {
    gstsic::codec::Bundle::load(
        &gstsic::codec::Bundle::default_dir(),
        &gstsic::codec::RuntimeOptions::default(),
    )
    .expect("load the default model bundle")
}

/// True when the bundle's model.json says it was trained (quality assertions need that).
pub fn model_is_trained() -> bool {
    let path = gstsic::codec::Bundle::default_dir().join("model.json");
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    let Ok(json) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    json["training"]["steps"].as_u64().unwrap_or(0) > 0
}

/// A fresh scratch directory under the target dir.
pub fn scratch_dir(name: &str) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A UDP port on 127.0.0.1 that was free a moment ago.
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A synthetic RGB picture (gradients plus a moving square).
pub fn synthetic_rgb(w: u32, h: u32, t: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let inside = (x + t * 3) % w < w / 3 && y > h / 4 && y < h / 2;
            v.push((x * 255 / w.max(1)) as u8);
            v.push((y * 255 / h.max(1)) as u8);
            v.push(if inside { 250 } else { 30 });
        }
    }
    v
}

/// Frames encoded by the codec core at `layers` layers.
pub fn encode_frames(w: u32, h: u32, n: u32, layers: u8) -> Vec<Vec<u8>> {
    let mut enc = gstsic::codec::Encoder::new(bundle());
    (0..n)
        .map(|t| {
            let data = synthetic_rgb(w, h, t);
            enc.encode(
                gstsic::codec::ImageRef {
                    width: w,
                    height: h,
                    stride: w as usize * 3,
                    format: gstsic::codec::PixelFormat::Rgb,
                    data: &data,
                },
                layers,
            )
            .unwrap()
            .bytes
        })
        .collect()
}

/// The same frame claiming to come from another model (model id patched, header CRC redone).
pub fn with_other_model_id(frame: &[u8]) -> Vec<u8> {
    use gstsic::codec::bitstream;
    let mut header = bitstream::parse_header(frame).unwrap().unwrap();
    let old_len = header.header_len();
    header.model_id = [0xAB; 8];
    let mut out = header.to_bytes();
    out.extend_from_slice(&frame[old_len..]);
    out
}
