// SPDX-License-Identifier: MIT OR Apache-2.0
//! `siclayers`: drops trailing layers of SIC frames in the compressed domain (no networks run).
//!
//! Output frames carry `min(carried, layers property (when > 0), what downstream caps allow)`
//! layers: the header is rewritten by `codec::thin`, payload bytes are untouched. The element is
//! in passthrough when it has nothing to drop.

use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use crate::codec;
use crate::common;

const DEFAULT_LAYERS: u32 = 0;

#[derive(Debug, Clone, Copy)]
struct Settings {
    layers: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            layers: DEFAULT_LAYERS,
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct State {
    /// Layers the output frames carry at most (negotiated); `None` = not limited.
    target: Option<u8>,
    dropped_warned: bool,
}

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "siclayers",
        gst::DebugColorFlags::empty(),
        Some("SIC layer thinner"),
    )
});

#[derive(Default)]
pub struct SicLayers {
    settings: Mutex<Settings>,
    state: Mutex<State>,
}

#[glib::object_subclass]
impl ObjectSubclass for SicLayers {
    const NAME: &'static str = "GstSicLayers";
    type Type = super::SicLayers;
    type ParentType = gst_base::BaseTransform;
}

impl ObjectImpl for SicLayers {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                glib::ParamSpecUInt::builder("layers")
                    .nick("Layers")
                    .blurb(
                        "Keep at most this many layers per frame; 0 = follow what downstream \
                         caps allow",
                    )
                    .minimum(0)
                    .maximum(common::MAX_LAYERS as u32)
                    .default_value(DEFAULT_LAYERS)
                    .mutable_playing()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        match pspec.name() {
            "layers" => {
                let layers = value.get().unwrap();
                let old = std::mem::replace(&mut self.settings.lock().unwrap().layers, layers);
                if old != layers {
                    gst::info!(CAT, imp = self, "layers: {} -> {}", old, layers);
                    self.obj().reconfigure_src();
                }
            }
            _ => unimplemented!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "layers" => self.settings.lock().unwrap().layers.to_value(),
            _ => unimplemented!(),
        }
    }
}

impl GstObjectImpl for SicLayers {}

impl ElementImpl for SicLayers {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "SIC layer thinner",
                "Filter/Video",
                "Drops trailing layers of SIC frames without decoding (header rewrite only)",
                "SIC project",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let caps = gst::Caps::builder(common::SIC_MEDIA_TYPE).build();
            vec![
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &caps,
                )
                .unwrap(),
            ]
        });
        PAD_TEMPLATES.as_ref()
    }
}

/// (min, max) of a `layers` field value, `None` when absent or not an int / range / list.
fn layers_bounds(s: &gst::StructureRef) -> Option<(i32, i32)> {
    let v = s.value("layers").ok()?;
    if let Ok(n) = v.get::<i32>() {
        Some((n, n))
    } else if let Ok(r) = v.get::<gst::IntRange<i32>>() {
        Some((r.min(), r.max()))
    } else if let Ok(l) = v.get::<gst::List>() {
        let ints: Vec<i32> = l.iter().filter_map(|v| v.get::<i32>().ok()).collect();
        Some((*ints.iter().min()?, *ints.iter().max()?))
    } else {
        None
    }
}

fn layers_value(min: i32, max: i32) -> glib::SendValue {
    if min >= max {
        min.to_send_value()
    } else {
        gst::IntRange::new(min, max).to_send_value()
    }
}

fn caps_layers(caps: &gst::Caps) -> Option<u8> {
    caps.structure(0)
        .and_then(|s| s.get::<i32>("layers").ok())
        .map(|n| n.clamp(1, common::MAX_LAYERS) as u8)
}

impl BaseTransformImpl for SicLayers {
    const MODE: gst_base::subclass::BaseTransformMode =
        gst_base::subclass::BaseTransformMode::AlwaysInPlace;
    const PASSTHROUGH_ON_SAME_CAPS: bool = false;
    const TRANSFORM_IP_ON_PASSTHROUGH: bool = false;

    fn start(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap() = State::default();
        Ok(())
    }

    fn transform_caps(
        &self,
        direction: gst::PadDirection,
        caps: &gst::Caps,
        filter: Option<&gst::Caps>,
    ) -> Option<gst::Caps> {
        let limit = match self.settings.lock().unwrap().layers {
            0 => common::MAX_LAYERS,
            n => n as i32,
        };
        let mut out = caps.clone();
        for s in out.make_mut().iter_mut() {
            let Some((min, max)) = layers_bounds(s) else {
                continue;
            };
            match direction {
                // Sink caps carrying [min, max] layers give frames of 1..=min(max, limit).
                gst::PadDirection::Sink => s.set_value("layers", layers_value(1, max.min(limit))),
                // Output of [min, max] layers needs input carrying at least min.
                _ => s.set_value("layers", layers_value(min.max(1), common::MAX_LAYERS)),
            }
        }
        gst::trace!(CAT, imp = self, "{:?}: {} -> {}", direction, caps, out);
        Some(match filter {
            Some(f) => f.intersect_with_mode(&out, gst::CapsIntersectMode::First),
            None => out,
        })
    }

    fn fixate_caps(
        &self,
        direction: gst::PadDirection,
        caps: &gst::Caps,
        othercaps: gst::Caps,
    ) -> gst::Caps {
        let mut othercaps = othercaps;
        othercaps.truncate();
        if direction == gst::PadDirection::Sink {
            // Keep as many layers as the input carries (within what the other side allows).
            if let Some(carried) = caps.structure(0).and_then(layers_bounds).map(|b| b.1) {
                let limit = match self.settings.lock().unwrap().layers {
                    0 => carried,
                    n => carried.min(n as i32),
                };
                if let Some(s) = othercaps.make_mut().structure_mut(0) {
                    s.fixate_field_nearest_int("layers", limit);
                }
            }
        }
        self.parent_fixate_caps(direction, caps, othercaps)
    }

    fn set_caps(&self, incaps: &gst::Caps, outcaps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let in_layers = caps_layers(incaps);
        let out_layers =
            caps_layers(outcaps).or_else(|| match self.settings.lock().unwrap().layers {
                0 => None,
                n => Some(n as u8),
            });
        let passthrough = match (in_layers, out_layers) {
            (_, None) => true,
            (Some(i), Some(o)) => o >= i,
            (None, Some(_)) => false,
        };
        gst::info!(
            CAT,
            imp = self,
            "in {:?} layers, out {:?} layers, passthrough {}",
            in_layers,
            out_layers,
            passthrough
        );
        self.state.lock().unwrap().target = out_layers;
        self.obj().set_passthrough(passthrough);
        Ok(())
    }

    fn transform_ip(&self, buf: &mut gst::BufferRef) -> Result<gst::FlowSuccess, gst::FlowError> {
        let Some(target) = self.state.lock().unwrap().target else {
            return Ok(gst::FlowSuccess::Ok);
        };
        let thinned = {
            let map = buf.map_readable().map_err(|_| gst::FlowError::Error)?;
            match codec::peek_frame(map.as_slice()) {
                Ok(Some(info)) if info.layers <= target => return Ok(gst::FlowSuccess::Ok),
                Ok(Some(_)) => codec::thin(map.as_slice(), target),
                Ok(None) => Err(codec::Error::Bitstream("truncated frame".into())),
                Err(e) => Err(e),
            }
        };
        match thinned {
            Ok(bytes) => {
                buf.replace_all_memory(gst::Memory::from_mut_slice(bytes));
                Ok(gst::FlowSuccess::Ok)
            }
            Err(e) => {
                let mut state = self.state.lock().unwrap();
                if !state.dropped_warned {
                    state.dropped_warned = true;
                    drop(state);
                    gst::element_imp_warning!(
                        self,
                        gst::StreamError::Decode,
                        ("Dropping corrupt SIC frame(s): {}", e)
                    );
                } else {
                    gst::warning!(CAT, imp = self, "dropping corrupt frame: {}", e);
                }
                Ok(gst_base::BASE_TRANSFORM_FLOW_DROPPED)
            }
        }
    }
}
