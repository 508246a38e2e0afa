// SPDX-License-Identifier: MIT OR Apache-2.0
//! `sicdec`: `video/x-sic` frames to raw RGB-family video.
//!
//! Decodes the layers each frame carries (at most `max-layers`), filling the others by
//! synonymous sampling (`sampling=uniform`, seeded) or with their means. The seed of frame `n`
//! (the n-th frame since the element started, counting from 0) is
//! `seed XOR (n * 0x9E3779B97F4A7C15)`, so a given `seed` reproduces the output exactly.
//!
//! A corrupt frame is dropped with a warning (counted against the base class' `max-errors`);
//! a frame made by another model is an error.
//!
//! Decoding needs memory in proportion to the picture a frame header declares (about 650 bytes
//! per pixel on the CPU up to `tile-size` per side, about 250 beyond, where g_s runs in tiles),
//! and a header is a few bytes: `max-pixels` caps what a frame may declare, so a tiny hostile
//! frame cannot make the decoder allocate gigabytes.

use std::sync::{Arc, LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;

use crate::codec;
use crate::common::{self, SamplingMode};

const DEFAULT_SAMPLING: SamplingMode = SamplingMode::Model;
const DEFAULT_SEED: u64 = 0;
const DEFAULT_MAX_LAYERS: u32 = 0;
/// 4096 × 4096: about 11 GB to decode on the CPU. The format allows up to `codec::MAX_AREA`.
const DEFAULT_MAX_PIXELS: u64 = 1 << 24;
/// Multiplier that spreads frame numbers over the seed space (2^64 / golden ratio).
const SEED_MIX: u64 = 0x9E37_79B9_7F4A_7C15;

#[derive(Debug, Clone)]
struct Settings {
    model: common::ModelSettings,
    sampling: SamplingMode,
    seed: u64,
    max_layers: u32,
    max_pixels: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: common::ModelSettings::default(),
            sampling: DEFAULT_SAMPLING,
            seed: DEFAULT_SEED,
            max_layers: DEFAULT_MAX_LAYERS,
            max_pixels: DEFAULT_MAX_PIXELS,
        }
    }
}

struct State {
    bundle: Arc<codec::Bundle>,
    decoder: codec::Decoder,
    model_id: String,
    input_state:
        Option<gst_video::VideoCodecState<'static, gst_video::video_codec_state::Readable>>,
    /// Output format and size currently negotiated.
    output: Option<(gst_video::VideoFormat, u32, u32)>,
    /// Frames decoded since start (drives the per-frame seed).
    frame_index: u64,
    /// The last caps `set_format` refused (its error is posted once).
    refused_caps: Option<gst::Caps>,
}

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "sicdec",
        gst::DebugColorFlags::empty(),
        Some("SIC (Synonymous Image Compression) decoder"),
    )
});

#[derive(Default)]
pub struct SicDec {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

#[glib::object_subclass]
impl ObjectSubclass for SicDec {
    const NAME: &'static str = "GstSicDec";
    type Type = super::SicDec;
    type ParentType = gst_video::VideoDecoder;
}

impl ObjectImpl for SicDec {
    fn constructed(&self) {
        self.parent_constructed();
        // sicparse / the encoder deliver whole frames.
        self.obj().set_packetized(true);
    }

    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut props = vec![
                glib::ParamSpecEnum::builder_with_default("sampling", DEFAULT_SAMPLING)
                    .nick("Sampling")
                    .blurb("How the slices a frame does not carry are filled")
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt64::builder("seed")
                    .nick("Seed")
                    .blurb(
                        "Seed of the uniform sampling; frame n (from 0 since start) uses \
                         seed XOR (n * 0x9E3779B97F4A7C15), so a seed reproduces the output",
                    )
                    .minimum(0)
                    .maximum(u64::MAX)
                    .default_value(DEFAULT_SEED)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("max-layers")
                    .nick("Maximum layers")
                    .blurb("Decode at most this many of the layers a frame carries; 0 = all")
                    .minimum(0)
                    .maximum(common::MAX_LAYERS as u32)
                    .default_value(DEFAULT_MAX_LAYERS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt64::builder("max-pixels")
                    .nick("Maximum pixels")
                    .blurb(
                        "Refuse frames whose picture has more pixels than this (decoding takes \
                         about 650 bytes of memory per pixel on the CPU, about 250 where the \
                         picture is larger than tile-size); the format allows up to 67108864",
                    )
                    .minimum(1)
                    .maximum(codec::MAX_AREA)
                    .default_value(DEFAULT_MAX_PIXELS)
                    .mutable_playing()
                    .build(),
            ];
            props.extend(common::ModelSettings::properties("synthesis"));
            props
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        let mut settings = self.settings.lock().unwrap();
        if settings.model.set_property(pspec.name(), value) {
            return;
        }
        match pspec.name() {
            "sampling" => settings.sampling = value.get().unwrap(),
            "seed" => settings.seed = value.get().unwrap(),
            "max-layers" => settings.max_layers = value.get().unwrap(),
            "max-pixels" => settings.max_pixels = value.get().unwrap(),
            _ => unimplemented!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "active-provider" {
            let state = self.state.lock().unwrap();
            let active = state
                .as_ref()
                .map(|s| s.bundle.active_provider().to_string());
            return active.unwrap_or_default().to_value();
        }
        let settings = self.settings.lock().unwrap();
        if let Some(value) = settings.model.property(pspec.name()) {
            return value;
        }
        match pspec.name() {
            "sampling" => settings.sampling.to_value(),
            "seed" => settings.seed.to_value(),
            "max-layers" => settings.max_layers.to_value(),
            "max-pixels" => settings.max_pixels.to_value(),
            _ => unimplemented!(),
        }
    }
}

impl GstObjectImpl for SicDec {}

impl ElementImpl for SicDec {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "SIC decoder",
                "Decoder/Video",
                "Synonymous Image Compression: decodes the layers each frame carries, samples \
                 the rest",
                "SIC project",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let sink = gst::PadTemplate::new(
                "sink",
                gst::PadDirection::Sink,
                gst::PadPresence::Always,
                &gst::Caps::builder(common::SIC_MEDIA_TYPE).build(),
            )
            .unwrap();
            let src = gst::PadTemplate::new(
                "src",
                gst::PadDirection::Src,
                gst::PadPresence::Always,
                &common::raw_caps(),
            )
            .unwrap();
            vec![src, sink]
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl SicDec {
    /// The first format of our preference list that downstream accepts.
    fn pick_format(&self) -> gst_video::VideoFormat {
        let allowed = self.obj().src_pad().allowed_caps();
        let Some(allowed) = allowed else {
            return common::RAW_FORMATS[0];
        };
        common::RAW_FORMATS
            .iter()
            .copied()
            .find(|f| {
                let caps = gst_video::VideoCapsBuilder::new().format(*f).build();
                allowed.can_intersect(&caps)
            })
            .unwrap_or(common::RAW_FORMATS[0])
    }

    fn ensure_output(
        &self,
        width: u32,
        height: u32,
    ) -> Result<gst_video::VideoFormat, gst::FlowError> {
        let obj = self.obj();
        let reconfigure = obj.src_pad().check_reconfigure();
        let (current, input_state) = {
            let guard = self.state.lock().unwrap();
            let state = guard.as_ref().ok_or(gst::FlowError::Flushing)?;
            (state.output, state.input_state.clone())
        };
        if let Some((format, w, h)) = current
            && !reconfigure
            && (w, h) == (width, height)
        {
            return Ok(format);
        }
        let format = self.pick_format();
        gst::info!(CAT, imp = self, "output {:?} {}x{}", format, width, height);
        let output_state = obj.set_output_state(format, width, height, input_state.as_ref())?;
        obj.negotiate(output_state)?;
        if let Some(state) = self.state.lock().unwrap().as_mut() {
            state.output = Some((format, width, height));
        }
        Ok(format)
    }

    /// Posts the error that refuses `input_state`'s caps, once: the base class offers the same
    /// caps again with every buffer, and one message per refusal is enough.
    fn refuse_caps(
        &self,
        mut guard: std::sync::MutexGuard<'_, Option<State>>,
        input_state: &gst_video::VideoCodecState<'static, gst_video::video_codec_state::Readable>,
        kind: gst::StreamError,
        msg: String,
    ) -> gst::LoggableError {
        let caps = input_state.caps_owned();
        let first = guard
            .as_mut()
            .is_some_and(|s| std::mem::replace(&mut s.refused_caps, caps.clone()) != caps);
        drop(guard);
        if first {
            gst::element_imp_error!(self, kind, ("{}", msg));
        }
        gst::loggable_error!(CAT, "{}", msg)
    }

    /// Counts a recoverable bitstream error and drops the frame.
    fn drop_corrupt(
        &self,
        frame: gst_video::VideoCodecFrame,
        err: &codec::Error,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let obj = self.obj();
        gst::warning!(CAT, imp = self, "dropping corrupt frame: {}", err);
        let ret = gst_video::video_decoder_error!(
            &*obj,
            1,
            gst::StreamError::Decode,
            ("Corrupt SIC frame dropped: {}", err)
        );
        obj.drop_frame(frame)?;
        ret
    }
}

impl VideoDecoderImpl for SicDec {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        let bundle = common::load_bundle(*CAT, self.obj().upcast_ref(), &settings.model)?;
        let mut decoder = codec::Decoder::new(bundle.clone());
        decoder
            .set_tile_size(settings.model.tile_size)
            .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ("{}", e)))?;
        *self.state.lock().unwrap() = Some(State {
            model_id: bundle.model_id_hex(),
            decoder,
            bundle,
            input_state: None,
            output: None,
            frame_index: 0,
            refused_caps: None,
        });
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap() = None;
        Ok(())
    }

    fn set_format(
        &self,
        input_state: &gst_video::VideoCodecState<'static, gst_video::video_codec_state::Readable>,
    ) -> Result<(), gst::LoggableError> {
        gst::debug!(CAT, imp = self, "input caps {:?}", input_state.caps());
        let mut guard = self.state.lock().unwrap();
        let state = guard
            .as_mut()
            .ok_or_else(|| gst::loggable_error!(CAT, "set_format before start"))?;
        if let Some(model) = input_state
            .caps()
            .and_then(|c| c.structure(0))
            .and_then(|s| s.get::<&str>("model").ok())
            && !model.eq_ignore_ascii_case(&state.model_id)
        {
            let msg = format!(
                "Stream made by model {} but the decoder loaded model {}",
                model, state.model_id
            );
            return Err(self.refuse_caps(guard, input_state, gst::StreamError::WrongType, msg));
        }
        // Frame headers are untrusted: when the caps announce the picture size, a frame that
        // declares a bigger one is refused before any network runs (decoding costs memory and
        // time in proportion to the declared size).
        let info = input_state.info();
        let area = u64::from(info.width()) * u64::from(info.height());
        let max_pixels = self.settings.lock().unwrap().max_pixels;
        if area > max_pixels {
            let msg = format!(
                "Stream is {}x{} ({area} pixels), more than max-pixels={max_pixels}; raise \
                 max-pixels to decode it (up to about 650 bytes of memory per pixel)",
                info.width(),
                info.height()
            );
            return Err(self.refuse_caps(guard, input_state, gst::StreamError::Decode, msg));
        }
        state
            .decoder
            .set_max_area(if area > 0 { area } else { codec::MAX_AREA });
        state.input_state = Some(input_state.clone());
        state.refused_caps = None;
        // Output size comes from the frame headers; renegotiate on the next frame.
        state.output = None;
        Ok(())
    }

    fn handle_frame(
        &self,
        mut frame: gst_video::VideoCodecFrame,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let obj = self.obj();
        let input = frame.input_buffer_owned().ok_or(gst::FlowError::Error)?;
        let map = input.map_readable().map_err(|_| gst::FlowError::Error)?;
        let data = map.as_slice();

        let info = match codec::peek_frame(data) {
            Ok(Some(info)) => info,
            Ok(None) => {
                let err =
                    codec::Error::Bitstream(format!("truncated frame ({} bytes)", data.len()));
                return self.drop_corrupt(frame, &err);
            }
            Err(e) => return self.drop_corrupt(frame, &e),
        };

        let settings = self.settings.lock().unwrap().clone();
        let max_layers = settings.max_layers.min(255) as u8;

        let area = u64::from(info.width) * u64::from(info.height);
        if area > settings.max_pixels {
            let err = codec::Error::Bitstream(format!(
                "frame is {}x{} ({area} pixels), more than max-pixels={}",
                info.width, info.height, settings.max_pixels
            ));
            return self.drop_corrupt(frame, &err);
        }

        let mut guard = self.state.lock().unwrap();
        let state = guard.as_mut().ok_or(gst::FlowError::Flushing)?;
        let n = state.frame_index;
        state.frame_index += 1;
        // QoS: a frame that is already late when it arrives would be decoded only for the base
        // class to drop it on the way out. Every SIC frame stands alone, so skipping it before
        // the networks run costs nothing later and lets a decoder slower than the stream catch
        // up. The base class's `qos` property turns this off too. The frame was counted above,
        // so sampling seeds do not depend on timing.
        let lateness = obj.max_decode_time(&frame);
        if lateness < 0 && obj.is_qos() {
            drop(guard);
            gst::debug!(
                CAT,
                imp = self,
                "skipping frame {n}: {} ms late (QoS)",
                -lateness / 1_000_000
            );
            obj.drop_frame(frame)?;
            return Ok(gst::FlowSuccess::Ok);
        }
        let seed = settings.seed ^ n.wrapping_mul(SEED_MIX);
        let sampling = match settings.sampling {
            SamplingMode::Model => state.bundle.default_sampling(seed),
            SamplingMode::Uniform => codec::Sampling::Uniform { seed },
            SamplingMode::Mean => codec::Sampling::Mean,
        };
        let decoded = match state.decoder.decode(data, max_layers, sampling) {
            Ok(d) => d,
            Err(codec::Error::Bitstream(m)) => {
                drop(guard);
                return self.drop_corrupt(frame, &codec::Error::Bitstream(m));
            }
            Err(codec::Error::ModelMismatch { expected, found }) => {
                drop(guard);
                gst::element_imp_error!(
                    self,
                    gst::StreamError::WrongType,
                    ("Frame made by another model"),
                    ["frame model id {}, decoder model id {}", found, expected]
                );
                return Err(gst::FlowError::NotSupported);
            }
            Err(e) => {
                drop(guard);
                gst::element_imp_error!(self, gst::StreamError::Decode, ("Decoding failed: {}", e));
                return Err(gst::FlowError::Error);
            }
        };
        drop(guard);
        drop(map);
        // Only a frame that decoded may change the output caps: a refused or corrupt one is
        // dropped without renegotiating downstream.
        let format = self.ensure_output(info.width, info.height)?;

        let pixel_format = common::pixel_format(format).ok_or(gst::FlowError::NotNegotiated)?;
        let output_state = obj.output_state().ok_or(gst::FlowError::NotNegotiated)?;
        let out_info = output_state.info().clone();
        obj.allocate_output_frame(&mut frame, None)?;
        {
            let buffer = frame.output_buffer_mut().ok_or(gst::FlowError::Error)?;
            let mut vframe = gst_video::VideoFrameRef::from_buffer_ref_writable(buffer, &out_info)
                .map_err(|_| gst::FlowError::Error)?;
            let stride = vframe.plane_stride()[0] as usize;
            let dst = vframe
                .plane_data_mut(0)
                .map_err(|_| gst::FlowError::Error)?;
            if let Err(e) = decoded.image.write_to(pixel_format, stride, dst) {
                gst::element_imp_error!(self, gst::StreamError::Decode, ("Output failed: {}", e));
                return Err(gst::FlowError::Error);
            }
        }

        let stats = common::stats_builder(
            u64::from(frame.system_frame_number()),
            frame.pts(),
            &decoded.timing,
        )
        .field("layers", u32::from(decoded.layers))
        .field("layers-carried", u32::from(info.layers))
        .field("levels", u32::from(info.levels))
        .field("bytes", input.size() as u64)
        .field("width", info.width)
        .field("height", info.height);
        let _ = obj.post_message(common::frame_stats_message(&*obj, stats));

        obj.finish_frame(frame)
    }
}
