//! Small helpers shared by the SIC elements: property enum types, pixel-format mapping, caps
//! helpers for the `layers` field and the per-frame statistics message.

use gst::glib;
use gst::prelude::*;

use crate::codec;

/// Media type of the compressed stream.
pub const SIC_MEDIA_TYPE: &str = "video/x-sic";
/// Name of the element message posted per frame by `sicenc` and `sicdec`.
pub const FRAME_STATS_MESSAGE: &str = "sic-frame-stats";
/// RTP encoding name of the SIC payload format (docs/rtp.md).
pub const RTP_ENCODING_NAME: &str = "X-SIC";
/// RTP clock rate of the SIC payload format, as for other video.
pub const RTP_CLOCK_RATE: u32 = 90_000;
/// Bytes of the SIC RTP payload header: the offset of the packet's first byte in its frame.
pub const RTP_PAYLOAD_HEADER_LEN: usize = 4;
/// Largest value of the `layers` / `levels` caps fields (what the bitstream allows).
pub const MAX_LAYERS: i32 = codec::bitstream::MAX_LEVELS as i32;
/// Largest picture width / height the codec accepts.
pub const MAX_DIMENSION: i32 = codec::MAX_DIMENSION as i32;

/// `execution-provider` property: where ONNX Runtime runs the heavy networks.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstSicExecutionProvider")]
pub enum ExecutionProvider {
    #[default]
    #[enum_value(name = "Auto: CUDA when available, else CPU", nick = "auto")]
    Auto = 0,
    #[enum_value(name = "CPU", nick = "cpu")]
    Cpu = 1,
    #[enum_value(name = "CUDA (fails when CUDA cannot be used)", nick = "cuda")]
    Cuda = 2,
}

impl From<ExecutionProvider> for codec::ExecutionProvider {
    fn from(p: ExecutionProvider) -> Self {
        match p {
            ExecutionProvider::Auto => codec::ExecutionProvider::Auto,
            ExecutionProvider::Cpu => codec::ExecutionProvider::Cpu,
            ExecutionProvider::Cuda => codec::ExecutionProvider::Cuda,
        }
    }
}

/// `sampling` property of `sicdec`: how untransmitted slices are filled.
#[derive(Debug, Eq, PartialEq, Ord, PartialOrd, Hash, Clone, Copy, Default, glib::Enum)]
#[repr(u32)]
#[enum_type(name = "GstSicSampling")]
pub enum SamplingMode {
    #[default]
    #[enum_value(
        name = "Model: the model bundle's default_sampling (model.json)",
        nick = "model"
    )]
    Model = 0,
    #[enum_value(
        name = "Uniform: synonymous sampling around the mean, seeded (see the seed property)",
        nick = "uniform"
    )]
    Uniform = 1,
    #[enum_value(name = "Mean: the conditional mean (deterministic)", nick = "mean")]
    Mean = 2,
}

/// Raw formats the elements accept / produce, in the decoder's order of preference.
pub const RAW_FORMATS: [gst_video::VideoFormat; 10] = [
    gst_video::VideoFormat::Rgb,
    gst_video::VideoFormat::Rgbx,
    gst_video::VideoFormat::Bgrx,
    gst_video::VideoFormat::Xrgb,
    gst_video::VideoFormat::Xbgr,
    gst_video::VideoFormat::Rgba,
    gst_video::VideoFormat::Bgra,
    gst_video::VideoFormat::Argb,
    gst_video::VideoFormat::Abgr,
    gst_video::VideoFormat::Bgr,
];

/// Maps a GStreamer raw format to the codec's packed pixel format.
pub fn pixel_format(format: gst_video::VideoFormat) -> Option<codec::PixelFormat> {
    use codec::PixelFormat as P;
    use gst_video::VideoFormat as F;
    Some(match format {
        F::Rgb => P::Rgb,
        F::Bgr => P::Bgr,
        F::Rgbx => P::Rgbx,
        F::Bgrx => P::Bgrx,
        F::Xrgb => P::Xrgb,
        F::Xbgr => P::Xbgr,
        F::Rgba => P::Rgba,
        F::Bgra => P::Bgra,
        F::Argb => P::Argb,
        F::Abgr => P::Abgr,
        _ => return None,
    })
}

/// Raw video caps for every supported format.
pub fn raw_caps() -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .format_list(RAW_FORMATS)
        .width_range(1..=MAX_DIMENSION)
        .height_range(1..=MAX_DIMENSION)
        .build()
}

/// Template caps of the compressed stream.
pub fn sic_template_caps() -> gst::Caps {
    gst::Caps::builder(SIC_MEDIA_TYPE)
        .field("width", gst::IntRange::new(1, MAX_DIMENSION))
        .field("height", gst::IntRange::new(1, MAX_DIMENSION))
        .field(
            "framerate",
            gst::FractionRange::new(gst::Fraction::new(0, 1), gst::Fraction::new(i32::MAX, 1)),
        )
        .field("layers", gst::IntRange::new(1, MAX_LAYERS))
        .field("levels", gst::IntRange::new(1, MAX_LAYERS))
        .build()
}

/// Caps of SIC over RTP (any dynamic payload type).
pub fn rtp_sic_caps() -> gst::Caps {
    gst::Caps::builder("application/x-rtp")
        .field("media", "video")
        .field("payload", gst::IntRange::new(96, 127))
        .field("clock-rate", RTP_CLOCK_RATE as i32)
        .field("encoding-name", RTP_ENCODING_NAME)
        .build()
}

/// The set of `layers` values in `1..=levels` a caps structure allows; `None` when the structure
/// has no `layers` field (= anything).
pub fn allowed_layers(s: &gst::StructureRef, levels: u8) -> Option<Vec<u8>> {
    let v = s.value("layers").ok()?;
    let mut out = Vec::new();
    collect_layers(v, levels, &mut out);
    out.sort_unstable();
    out.dedup();
    Some(out)
}

fn collect_layers(v: &glib::SendValue, levels: u8, out: &mut Vec<u8>) {
    let levels = i32::from(levels);
    if let Ok(n) = v.get::<i32>() {
        if (1..=levels).contains(&n) {
            out.push(n as u8);
        }
    } else if let Ok(r) = v.get::<gst::IntRange<i32>>() {
        let step = r.step().max(1);
        let mut n = r.min();
        while n <= r.max().min(levels) {
            if n >= 1 {
                out.push(n as u8);
            }
            n += step;
        }
    } else if let Ok(list) = v.get::<gst::List>() {
        for item in list.iter() {
            collect_layers(item, levels as u8, out);
        }
    }
}

/// The number of layers to produce: the largest value downstream allows that is `<= wanted`
/// (or the smallest allowed value when all allowed values exceed `wanted`). `allowed` = `None`
/// means downstream does not restrict layers. Returns `None` when downstream allows no value in
/// `1..=levels`.
pub fn choose_layers(allowed: Option<&gst::Caps>, levels: u8, wanted: u8) -> Option<u8> {
    let wanted = wanted.clamp(1, levels.max(1));
    let Some(allowed) = allowed else {
        return Some(wanted);
    };
    if allowed.is_any() {
        return Some(wanted);
    }
    let mut values = Vec::new();
    for s in allowed.iter() {
        if s.name() != SIC_MEDIA_TYPE {
            continue;
        }
        match allowed_layers(s, levels) {
            None => values.extend(1..=levels),
            Some(v) => values.extend(v),
        }
    }
    values.sort_unstable();
    values.dedup();
    values
        .iter()
        .rev()
        .find(|&&n| n <= wanted)
        .or_else(|| values.first())
        .copied()
}

/// Builds the element message `sic-frame-stats`.
pub fn frame_stats_message(
    src: &impl IsA<gst::Object>,
    builder: gst::structure::Builder,
) -> gst::Message {
    gst::message::Element::builder(builder.build())
        .src(src)
        .build()
}

/// The `sic-frame-stats` structure builder pre-filled with the timing fields.
pub fn stats_builder(
    frame_number: u64,
    pts: Option<gst::ClockTime>,
    timing: &codec::Timing,
) -> gst::structure::Builder {
    gst::Structure::builder(FRAME_STATS_MESSAGE)
        .field("frame-number", frame_number)
        .field("pts", pts.map(|t| t.nseconds()).unwrap_or(u64::MAX))
        .field("time-convert", timing.convert)
        .field("time-transform", timing.transform)
        .field("time-params", timing.params)
        .field("time-entropy", timing.entropy)
        .field(
            "time-total",
            timing.convert + timing.transform + timing.params + timing.entropy,
        )
}

/// Model and runtime settings shared by `sicenc` and `sicdec`, with their properties.
#[derive(Debug, Clone)]
pub struct ModelSettings {
    pub model_location: String,
    pub execution_provider: ExecutionProvider,
    pub device_id: i32,
    pub threads: u32,
    pub share_model: bool,
    /// Side of the tiles the heavy network runs in on larger pictures (a multiple of 64; 0 =
    /// whole pictures). Not part of what `share-model` compares: it is the element's own.
    pub tile_size: u32,
}

impl Default for ModelSettings {
    fn default() -> Self {
        ModelSettings {
            model_location: String::new(),
            execution_provider: ExecutionProvider::default(),
            device_id: 0,
            threads: 0,
            share_model: true,
            tile_size: codec::DEFAULT_TILE_SIZE,
        }
    }
}

impl ModelSettings {
    /// `model-location`, `execution-provider`, `device-id`, `threads`, `share-model`,
    /// `tile-size` and the read-only `active-provider`; `network` names the heavy network the
    /// element runs.
    pub fn properties(network: &str) -> Vec<glib::ParamSpec> {
        let defaults = ModelSettings::default();
        vec![
            glib::ParamSpecString::builder("model-location")
                .nick("Model location")
                .blurb(
                    "Directory of the SIC model bundle (model.json + ONNX graphs); empty = the \
                     default bundle (SIC_MODEL_DIR, next to the plugin, or the source tree's \
                     models/sic-lite)",
                )
                .default_value(Some(defaults.model_location.as_str()))
                .mutable_ready()
                .build(),
            glib::ParamSpecEnum::builder_with_default(
                "execution-provider",
                defaults.execution_provider,
            )
            .nick("Execution provider")
            .blurb(&format!(
                "Where ONNX Runtime runs the {network} network (the entropy-parameter networks \
                 always run on the CPU so every device decodes every stream)"
            ))
            .mutable_ready()
            .build(),
            glib::ParamSpecInt::builder("device-id")
                .nick("Device ID")
                .blurb("GPU index for the CUDA execution provider")
                .minimum(0)
                .maximum(i32::MAX)
                .default_value(defaults.device_id)
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("threads")
                .nick("Threads")
                .blurb("Intra-op threads for the heavy networks; 0 = ONNX Runtime's default")
                .minimum(0)
                .maximum(1024)
                .default_value(defaults.threads)
                .mutable_ready()
                .build(),
            glib::ParamSpecBoolean::builder("share-model")
                .nick("Share model")
                .blurb(
                    "Use the model another sicenc or sicdec of this process has loaded with the \
                     same model-location, execution-provider, device-id and threads: one copy \
                     (about 60 MB on the CPU) and one load instead of one per element; elements \
                     sharing it take turns running each network",
                )
                .default_value(defaults.share_model)
                .mutable_ready()
                .build(),
            glib::ParamSpecUInt::builder("tile-size")
                .nick("Tile size")
                .blurb(&format!(
                    "Pictures wider or taller than this many pixels run the {network} network \
                     in tiles of this size, each with the overlap the model needs, so the \
                     result is the same while the working memory (about 650 bytes per pixel on \
                     the CPU) stays that of one tile; rounded up to a multiple of 64; 0 = whole \
                     pictures"
                ))
                .minimum(0)
                .maximum(codec::MAX_DIMENSION)
                .default_value(defaults.tile_size)
                .mutable_ready()
                .build(),
            glib::ParamSpecString::builder("active-provider")
                .nick("Active execution provider")
                .blurb(
                    "Where the heavy network actually runs once started (cpu or cuda; empty \
                     before start): execution-provider=auto resolves to one of them",
                )
                .read_only()
                .build(),
        ]
    }

    /// Sets one of [`Self::properties`]; false when `name` is not one of them.
    pub fn set_property(&mut self, name: &str, value: &glib::Value) -> bool {
        match name {
            "model-location" => {
                self.model_location = value.get::<Option<String>>().unwrap().unwrap_or_default()
            }
            "execution-provider" => self.execution_provider = value.get().unwrap(),
            "device-id" => self.device_id = value.get().unwrap(),
            "threads" => self.threads = value.get().unwrap(),
            "share-model" => self.share_model = value.get().unwrap(),
            "tile-size" => self.tile_size = value.get::<u32>().unwrap().next_multiple_of(64),
            _ => return false,
        }
        true
    }

    /// Reads one of [`Self::properties`] except `active-provider` (which lives in the state).
    pub fn property(&self, name: &str) -> Option<glib::Value> {
        Some(match name {
            "model-location" => self.model_location.to_value(),
            "execution-provider" => self.execution_provider.to_value(),
            "device-id" => self.device_id.to_value(),
            "threads" => self.threads.to_value(),
            "share-model" => self.share_model.to_value(),
            "tile-size" => self.tile_size.to_value(),
            _ => return None,
        })
    }
}

/// Loads the model bundle for an element's `start()`: the error names the missing file or
/// library; the provider actually used for the heavy networks, and why, is logged at INFO
/// (so `auto` says when it runs on the CPU).
pub fn load_bundle(
    cat: gst::DebugCategory,
    element: &gst::Element,
    settings: &ModelSettings,
) -> Result<std::sync::Arc<codec::Bundle>, gst::ErrorMessage> {
    let dir = if settings.model_location.is_empty() {
        codec::Bundle::default_dir()
    } else {
        std::path::PathBuf::from(&settings.model_location)
    };
    let opts = codec::RuntimeOptions {
        provider: settings.execution_provider.into(),
        device_id: settings.device_id,
        threads: settings.threads as usize,
        ort_library: None,
    };
    let (bundle, reused) = if settings.share_model {
        codec::Bundle::load_shared(&dir, &opts)
    } else {
        codec::Bundle::load(&dir, &opts).map(|b| (b, false))
    }
    .map_err(|e| load_error(&e, &dir))?;
    gst::info!(
        cat,
        obj = element,
        "{} model {} ({}), {} levels, from {}; heavy networks on {} ({})",
        if reused {
            "sharing the already loaded"
        } else {
            "loaded"
        },
        bundle.name(),
        bundle.model_id_hex(),
        bundle.levels(),
        dir.display(),
        bundle.active_provider(),
        bundle.provider_note()
    );
    Ok(bundle)
}

fn load_error(err: &codec::Error, dir: &std::path::Path) -> gst::ErrorMessage {
    match err {
        codec::Error::Runtime(m) => {
            gst::error_msg!(gst::LibraryError::Init, ("Cannot load ONNX Runtime: {}", m))
        }
        codec::Error::Model(m) => gst::error_msg!(
            gst::ResourceError::OpenRead,
            ("Cannot load SIC model bundle from {}: {}", dir.display(), m)
        ),
        other => gst::error_msg!(
            gst::LibraryError::Init,
            (
                "Cannot load SIC model bundle from {}: {}",
                dir.display(),
                other
            )
        ),
    }
}
