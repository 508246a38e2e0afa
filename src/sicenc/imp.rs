// SPDX-License-Identifier: MIT OR Apache-2.0
//! `sicenc`: raw RGB-family video to `video/x-sic` frames.
//!
//! Every frame is a self-contained sync point. The number of layers the frames carry is
//! negotiated with downstream (`layers` caps field, the `layers` property caps it) and follows a
//! RECONFIGURE while playing from the next frame on. With `target-bitrate` set, each frame is
//! encoded at the negotiated number of layers and truncated (codec::thin) to the most layers that
//! fit a per-frame budget, so the `layers` caps field is then the maximum a frame carries.
//! `rdo-lambda` weighs bits against error when the latent is quantised (an encoder-only choice:
//! the stream format does not change).

use std::sync::{LazyLock, Mutex};
use std::time::Instant;

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_video::prelude::*;
use gst_video::subclass::prelude::*;

use crate::codec;
use crate::common;

const DEFAULT_LAYERS: u32 = 0;
const DEFAULT_TARGET_BITRATE: u32 = 0;
/// Frame rate assumed for the per-frame bit budget when neither the caps nor the frame say.
const FALLBACK_FPS: f64 = 25.0;

#[derive(Debug, Clone)]
struct Settings {
    model: common::ModelSettings,
    layers: u32,
    target_bitrate: u32,
    rdo_lambda: f32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            model: common::ModelSettings::default(),
            layers: DEFAULT_LAYERS,
            target_bitrate: DEFAULT_TARGET_BITRATE,
            rdo_lambda: codec::DEFAULT_RDO_LAMBDA,
        }
    }
}

struct State {
    encoder: codec::Encoder,
    levels: u8,
    model_id: String,
    input_state:
        Option<gst_video::VideoCodecState<'static, gst_video::video_codec_state::Readable>>,
    /// Layers announced in the current output caps.
    layers: u8,
    /// Bits left over from earlier frames under rate control (0..=one frame's budget).
    credit_bits: f64,
    budget_warned: bool,
}

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "sicenc",
        gst::DebugColorFlags::empty(),
        Some("SIC (Synonymous Image Compression) encoder"),
    )
});

#[derive(Default)]
pub struct SicEnc {
    settings: Mutex<Settings>,
    state: Mutex<Option<State>>,
}

#[glib::object_subclass]
impl ObjectSubclass for SicEnc {
    const NAME: &'static str = "GstSicEnc";
    type Type = super::SicEnc;
    type ParentType = gst_video::VideoEncoder;
}

impl ObjectImpl for SicEnc {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            let mut props = vec![
                glib::ParamSpecUInt::builder("layers")
                    .nick("Layers")
                    .blurb(
                        "Most layers per frame (1..=model levels); 0 = as many as downstream \
                         allows (all levels when unrestricted)",
                    )
                    .minimum(0)
                    .maximum(common::MAX_LAYERS as u32)
                    .default_value(DEFAULT_LAYERS)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecUInt::builder("target-bitrate")
                    .nick("Target bitrate")
                    .blurb(
                        "Rate control by truncation, in bits/s: each frame keeps the most layers \
                         that fit the budget (at least one); 0 = off",
                    )
                    .minimum(0)
                    .maximum(u32::MAX)
                    .default_value(DEFAULT_TARGET_BITRATE)
                    .mutable_playing()
                    .build(),
                glib::ParamSpecFloat::builder("rdo-lambda")
                    .nick("RDO lambda")
                    .blurb(
                        "Rate-distortion optimised quantisation: weight of the bits against the \
                         latent's squared error when rounding (0 = plain rounding; larger = fewer \
                         bits, a little lower quality). Decoders need no setting",
                    )
                    .minimum(0.0)
                    .maximum(codec::MAX_RDO_LAMBDA)
                    .default_value(codec::DEFAULT_RDO_LAMBDA)
                    .mutable_playing()
                    .build(),
            ];
            props.extend(common::ModelSettings::properties("analysis"));
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
            "layers" => {
                let layers = value.get().unwrap();
                if layers != settings.layers {
                    gst::info!(CAT, imp = self, "layers: {} -> {}", settings.layers, layers);
                    settings.layers = layers;
                    drop(settings);
                    // Apply from the next frame on.
                    self.obj().src_pad().mark_reconfigure();
                }
            }
            "target-bitrate" => settings.target_bitrate = value.get().unwrap(),
            "rdo-lambda" => settings.rdo_lambda = value.get().unwrap(),
            _ => unimplemented!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        if pspec.name() == "active-provider" {
            let state = self.state.lock().unwrap();
            let active = state
                .as_ref()
                .map(|s| s.encoder.bundle().active_provider().to_string());
            return active.unwrap_or_default().to_value();
        }
        let settings = self.settings.lock().unwrap();
        if let Some(value) = settings.model.property(pspec.name()) {
            return value;
        }
        match pspec.name() {
            "layers" => settings.layers.to_value(),
            "target-bitrate" => settings.target_bitrate.to_value(),
            "rdo-lambda" => settings.rdo_lambda.to_value(),
            _ => unimplemented!(),
        }
    }
}

impl GstObjectImpl for SicEnc {}

impl ElementImpl for SicEnc {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "SIC encoder",
                "Encoder/Video",
                "Synonymous Image Compression: learned progressive image codec, every frame \
                 intra, layers negotiated with downstream",
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
                &common::raw_caps(),
            )
            .unwrap();
            let src = gst::PadTemplate::new(
                "src",
                gst::PadDirection::Src,
                gst::PadPresence::Always,
                &common::sic_template_caps(),
            )
            .unwrap();
            vec![src, sink]
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl SicEnc {
    /// Layers to announce: the property (or all levels) limited by what downstream accepts.
    fn pick_layers(&self, levels: u8) -> Result<u8, String> {
        let wanted = match self.settings.lock().unwrap().layers {
            0 => levels,
            n => n.min(u32::from(levels)) as u8,
        };
        let allowed = self.obj().src_pad().allowed_caps();
        gst::debug!(CAT, imp = self, "downstream allows {:?}", allowed);
        common::choose_layers(allowed.as_ref(), levels, wanted).ok_or_else(|| {
            format!(
                "downstream accepts no number of layers in 1..={levels} (allowed caps: {})",
                allowed.map(|c| c.to_string()).unwrap_or_default()
            )
        })
    }

    fn output_caps(
        &self,
        info: &gst_video::VideoInfo,
        layers: u8,
        levels: u8,
        model_id: &str,
    ) -> gst::Caps {
        gst::Caps::builder(common::SIC_MEDIA_TYPE)
            .field("width", info.width() as i32)
            .field("height", info.height() as i32)
            .field("framerate", info.fps())
            .field("layers", i32::from(layers))
            .field("levels", i32::from(levels))
            .field("model", model_id)
            .build()
    }

    /// Picks the number of layers and pushes new output caps if it changed (or `force`).
    fn negotiate_layers(&self, force: bool) -> Result<(), gst::FlowError> {
        let mut guard = self.state.lock().unwrap();
        let Some(state) = guard.as_mut() else {
            return Err(gst::FlowError::NotNegotiated);
        };
        let Some(input_state) = state.input_state.clone() else {
            return Err(gst::FlowError::NotNegotiated);
        };
        let layers = match self.pick_layers(state.levels) {
            Ok(n) => n,
            Err(msg) => {
                drop(guard);
                gst::element_imp_error!(self, gst::CoreError::Negotiation, ("{}", msg));
                return Err(gst::FlowError::NotNegotiated);
            }
        };
        if !force && layers == state.layers {
            // Nothing changes for us; let the base class redo the plain negotiation.
            self.obj().src_pad().mark_reconfigure();
            return Ok(());
        }
        gst::info!(
            CAT,
            imp = self,
            "output layers {} -> {}",
            state.layers,
            layers
        );
        let caps = self.output_caps(input_state.info(), layers, state.levels, &state.model_id);
        state.layers = layers;
        drop(guard);

        let obj = self.obj();
        let output_state = obj.set_output_state(caps, Some(&input_state))?;
        obj.negotiate(output_state)?;
        Ok(())
    }

    fn frame_budget_bits(&self, bitrate: u32, frame: &gst_video::VideoCodecFrame) -> f64 {
        let state = self.state.lock().unwrap();
        let fps = state
            .as_ref()
            .and_then(|s| s.input_state.as_ref())
            .map(|s| s.info().fps())
            .filter(|f| f.numer() > 0 && f.denom() > 0)
            .map(|f| f64::from(f.numer()) / f64::from(f.denom()));
        let seconds = match (fps, frame.duration()) {
            (Some(fps), _) => 1.0 / fps,
            (None, Some(d)) if d > gst::ClockTime::ZERO => d.nseconds() as f64 / 1e9,
            _ => 1.0 / FALLBACK_FPS,
        };
        f64::from(bitrate) * seconds
    }
}

impl VideoEncoderImpl for SicEnc {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        let settings = self.settings.lock().unwrap().clone();
        let bundle = common::load_bundle(*CAT, self.obj().upcast_ref(), &settings.model)?;
        let levels = bundle.levels();
        let model_id = bundle.model_id_hex();
        let mut encoder = codec::Encoder::new(bundle);
        encoder
            .set_tile_size(settings.model.tile_size)
            .map_err(|e| gst::error_msg!(gst::LibraryError::Settings, ("{}", e)))?;
        *self.state.lock().unwrap() = Some(State {
            encoder,
            levels,
            model_id,
            input_state: None,
            layers: 0,
            credit_bits: 0.0,
            budget_warned: false,
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
        let info = input_state.info();
        if common::pixel_format(info.format()).is_none() {
            return Err(gst::loggable_error!(
                CAT,
                "unsupported format {:?}",
                info.format()
            ));
        }
        gst::debug!(CAT, imp = self, "input {:?}", info);
        {
            let mut guard = self.state.lock().unwrap();
            let state = guard
                .as_mut()
                .ok_or_else(|| gst::loggable_error!(CAT, "set_format before start"))?;
            state.input_state = Some(input_state.clone());
            state.credit_bits = 0.0;
        }
        self.negotiate_layers(true)
            .map_err(|e| gst::loggable_error!(CAT, "negotiation failed: {:?}", e))?;

        // One frame in, one frame out: report one frame duration of processing latency.
        let fps = info.fps();
        let latency = if fps.numer() > 0 {
            gst::ClockTime::SECOND
                .mul_div_floor(fps.denom() as u64, fps.numer() as u64)
                .unwrap_or(gst::ClockTime::ZERO)
        } else {
            gst::ClockTime::ZERO
        };
        self.obj().set_latency(latency, Some(latency));
        Ok(())
    }

    fn handle_frame(
        &self,
        mut frame: gst_video::VideoCodecFrame,
    ) -> Result<gst::FlowSuccess, gst::FlowError> {
        let obj = self.obj();
        if obj.src_pad().check_reconfigure() {
            self.negotiate_layers(false)?;
        }
        let (target_bitrate, rdo_lambda) = {
            let s = self.settings.lock().unwrap();
            (s.target_bitrate, s.rdo_lambda)
        };
        let budget_bits = if target_bitrate > 0 {
            Some(self.frame_budget_bits(target_bitrate, &frame))
        } else {
            None
        };

        let started = Instant::now();
        let mut guard = self.state.lock().unwrap();
        let state = guard.as_mut().ok_or(gst::FlowError::NotNegotiated)?;
        let input_state = state
            .input_state
            .clone()
            .ok_or(gst::FlowError::NotNegotiated)?;
        let info = input_state.info();
        let format = common::pixel_format(info.format()).ok_or(gst::FlowError::NotNegotiated)?;
        let carried_max = state.layers;
        if let Err(e) = state.encoder.set_rdo_lambda(rdo_lambda) {
            drop(guard);
            gst::element_imp_error!(self, gst::LibraryError::Settings, ("{}", e));
            return Err(gst::FlowError::Error);
        }

        let input = frame.input_buffer().ok_or(gst::FlowError::Error)?;
        let vframe =
            gst_video::VideoFrameRef::from_buffer_ref_readable(input, info).map_err(|_| {
                gst::element_imp_error!(self, gst::CoreError::Failed, ("Failed to map input"));
                gst::FlowError::Error
            })?;
        let image = codec::ImageRef {
            width: info.width(),
            height: info.height(),
            stride: vframe.plane_stride()[0] as usize,
            format,
            data: vframe.plane_data(0).map_err(|_| gst::FlowError::Error)?,
        };
        let encoded = match state.encoder.encode(image, carried_max) {
            Ok(e) => e,
            Err(e) => {
                drop(vframe);
                drop(guard);
                gst::element_imp_error!(self, gst::StreamError::Encode, ("Encoding failed: {}", e));
                return Err(gst::FlowError::Error);
            }
        };
        drop(vframe);

        // Rate control by truncation.
        let mut keep = carried_max.min(encoded.layer_sizes.len() as u8).max(1);
        let mut over_budget = false;
        if let Some(budget) = budget_bits {
            let allowance = budget + state.credit_bits;
            let fit = encoded
                .layer_sizes
                .iter()
                .take(keep as usize)
                .take_while(|&&bytes| (bytes as f64) * 8.0 <= allowance)
                .count() as u8;
            if fit == 0 {
                over_budget = true;
            }
            keep = fit.max(1);
            let used = encoded.layer_sizes[keep as usize - 1] as f64 * 8.0;
            state.credit_bits = (allowance - used).clamp(0.0, budget);
        }
        let warn_budget = over_budget && !state.budget_warned;
        if warn_budget {
            state.budget_warned = true;
        }
        let timing = encoded.timing;
        let mut layer_sizes = encoded.layer_sizes;
        let mut bytes = encoded.bytes;
        let levels = state.levels;
        drop(guard);

        if warn_budget {
            gst::element_imp_warning!(
                self,
                gst::StreamError::Encode,
                (
                    "target-bitrate {} bits/s is below what one layer needs ({} bytes per frame); \
                     sending 1 layer per frame",
                    target_bitrate,
                    layer_sizes.first().copied().unwrap_or(0)
                )
            );
        }

        // A RECONFIGURE may have arrived while encoding: follow it now, thinning this frame.
        if obj.src_pad().check_reconfigure() {
            self.negotiate_layers(false)?;
            let now = self
                .state
                .lock()
                .unwrap()
                .as_ref()
                .map(|s| s.layers)
                .unwrap_or(keep);
            keep = keep.min(now);
        }
        let carried = codec::peek_frame(&bytes)
            .ok()
            .flatten()
            .map(|i| i.layers)
            .unwrap_or(carried_max);
        if keep < carried {
            bytes = codec::thin(&bytes, keep).map_err(|e| {
                gst::element_imp_error!(self, gst::StreamError::Encode, ("Thinning failed: {}", e));
                gst::FlowError::Error
            })?;
            layer_sizes.truncate(keep as usize);
        }

        gst::trace!(
            CAT,
            imp = self,
            "frame {}: {} of {} layers, {} bytes in {:?}",
            frame.system_frame_number(),
            keep,
            levels,
            bytes.len(),
            started.elapsed()
        );

        let stats =
            common::stats_builder(u64::from(frame.system_frame_number()), frame.pts(), &timing)
                .field("layers", u32::from(keep))
                .field("levels", u32::from(levels))
                .field("bytes", bytes.len() as u64)
                .field(
                    "layer-bytes",
                    gst::Array::new(layer_sizes.iter().map(|&b| b as u64)),
                )
                .field("target-bitrate", target_bitrate);
        let _ = obj.post_message(common::frame_stats_message(&*obj, stats));

        frame.set_flags(gst_video::VideoCodecFrameFlags::SYNC_POINT);
        frame.set_output_buffer(gst::Buffer::from_mut_slice(bytes));
        obj.finish_frame(frame)
    }
}
