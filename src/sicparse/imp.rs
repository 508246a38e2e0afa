// SPDX-License-Identifier: MIT OR Apache-2.0
//! `sicparse`: splits a byte stream of SIC frames (a file, a TCP stream) into one buffer per
//! frame and sets `video/x-sic, width, height, layers, levels, model, parsed=true` caps.
//!
//! Every frame header is validated with `codec::peek_frame`; after garbage the parser resyncs by
//! scanning forward for the next offset where a valid header starts.
//!
//! A SIC stream carries no timing, so frames from a file are untimed unless upstream caps or the
//! `framerate` property give a rate; with one, the base class stamps every frame, estimates the
//! duration and can seek (every frame is a sync point).

use std::sync::{LazyLock, Mutex};

use gst::glib;
use gst::prelude::*;
use gst::subclass::prelude::*;
use gst_base::prelude::*;
use gst_base::subclass::prelude::*;

use crate::codec;
use crate::common;

/// Bytes asked for before anything is known (enough for a header).
const MIN_PROBE: u32 = 64;
const DEFAULT_FRAMERATE: gst::Fraction = gst::Fraction::from_integer(0);

#[derive(Debug, Default)]
struct State {
    /// Framerate from upstream caps, when they give one.
    framerate: Option<gst::Fraction>,
    /// Caps last pushed downstream.
    caps: Option<gst::Caps>,
    /// Bytes skipped since the last good frame (for logging).
    skipped: u64,
    frames: u64,
}

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "sicparse",
        gst::DebugColorFlags::empty(),
        Some("SIC stream parser"),
    )
});

#[derive(Default)]
pub struct SicParse {
    /// The `framerate` property: used when upstream caps give none.
    framerate: Mutex<Option<gst::Fraction>>,
    state: Mutex<State>,
}

#[glib::object_subclass]
impl ObjectSubclass for SicParse {
    const NAME: &'static str = "GstSicParse";
    type Type = super::SicParse;
    type ParentType = gst_base::BaseParse;
}

impl ObjectImpl for SicParse {
    fn properties() -> &'static [glib::ParamSpec] {
        static PROPERTIES: LazyLock<Vec<glib::ParamSpec>> = LazyLock::new(|| {
            vec![
                gst::ParamSpecFraction::builder("framerate")
                    .nick("Frame rate")
                    .blurb(
                        "Frames per second to timestamp the frames with when upstream caps give \
                         no rate (a SIC file stores none); 0/1 leaves them untimed",
                    )
                    .minimum(gst::Fraction::from_integer(0))
                    .maximum(gst::Fraction::from_integer(i32::MAX))
                    .default_value(DEFAULT_FRAMERATE)
                    .mutable_ready()
                    .build(),
            ]
        });
        PROPERTIES.as_ref()
    }

    fn set_property(&self, _id: usize, value: &glib::Value, pspec: &glib::ParamSpec) {
        match pspec.name() {
            "framerate" => {
                let fps: gst::Fraction = value.get().unwrap();
                *self.framerate.lock().unwrap() = (fps.numer() > 0).then_some(fps);
            }
            _ => unimplemented!(),
        }
    }

    fn property(&self, _id: usize, pspec: &glib::ParamSpec) -> glib::Value {
        match pspec.name() {
            "framerate" => self
                .framerate
                .lock()
                .unwrap()
                .unwrap_or(DEFAULT_FRAMERATE)
                .to_value(),
            _ => unimplemented!(),
        }
    }
}

impl GstObjectImpl for SicParse {}

impl ElementImpl for SicParse {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "SIC parser",
                "Codec/Parser/Video",
                "Frames a Synonymous Image Compression byte stream",
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
            let mut src_caps = common::sic_template_caps();
            src_caps.make_mut().set("parsed", true);
            let src = gst::PadTemplate::new(
                "src",
                gst::PadDirection::Src,
                gst::PadPresence::Always,
                &src_caps,
            )
            .unwrap();
            vec![src, sink]
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl SicParse {
    fn update_caps(&self, info: &codec::FrameInfo) {
        let property_fps = *self.framerate.lock().unwrap();
        let mut state = self.state.lock().unwrap();
        let fps = state
            .framerate
            .or(property_fps)
            .unwrap_or(DEFAULT_FRAMERATE);
        let caps = gst::Caps::builder(common::SIC_MEDIA_TYPE)
            .field("width", info.width as i32)
            .field("height", info.height as i32)
            .field("framerate", fps)
            .field("layers", i32::from(info.layers))
            .field("levels", i32::from(info.levels))
            .field("model", hex(&info.model_id))
            .field("parsed", true)
            .build();
        if state.caps.as_ref() == Some(&caps) {
            return;
        }
        gst::debug!(CAT, imp = self, "new caps {}", caps);
        state.caps = Some(caps.clone());
        drop(state);
        let obj = self.obj();
        if fps.numer() > 0 {
            obj.set_frame_rate(fps, 0, 0);
        }
        obj.src_pad().push_event(gst::event::Caps::new(&caps));
    }
}

fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

impl BaseParseImpl for SicParse {
    fn start(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap() = State::default();
        let obj = self.obj();
        obj.set_min_frame_size(MIN_PROBE);
        obj.set_syncable(true);
        Ok(())
    }

    fn stop(&self) -> Result<(), gst::ErrorMessage> {
        *self.state.lock().unwrap() = State::default();
        Ok(())
    }

    fn set_sink_caps(&self, caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let fps = caps
            .structure(0)
            .and_then(|s| s.get::<gst::Fraction>("framerate").ok())
            .filter(|f| f.numer() > 0);
        gst::debug!(CAT, imp = self, "sink caps {}", caps);
        let mut state = self.state.lock().unwrap();
        state.framerate = fps;
        state.caps = None;
        Ok(())
    }

    fn handle_frame(
        &self,
        mut frame: gst_base::BaseParseFrame,
    ) -> Result<(gst::FlowSuccess, u32), gst::FlowError> {
        let obj = self.obj();
        let draining = obj.is_draining();
        let (result, available) = {
            let buffer = frame.buffer().ok_or(gst::FlowError::Error)?;
            let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
            let data = map.as_slice();
            (scan(data), data.len())
        };

        match result {
            Scan::Frame { skip: 0, info } => {
                if info.frame_len > available {
                    if draining {
                        gst::warning!(
                            CAT,
                            imp = self,
                            "truncated last frame ({} of {} bytes), dropping",
                            available,
                            info.frame_len
                        );
                        return Ok((gst::FlowSuccess::Ok, available as u32));
                    }
                    obj.set_min_frame_size(info.frame_len.min(u32::MAX as usize) as u32);
                    return Ok((gst::FlowSuccess::Ok, 0));
                }
                {
                    let mut state = self.state.lock().unwrap();
                    if state.skipped > 0 {
                        gst::warning!(
                            CAT,
                            imp = self,
                            "resynced after skipping {} bytes",
                            state.skipped
                        );
                        state.skipped = 0;
                    }
                    state.frames += 1;
                }
                obj.set_min_frame_size(MIN_PROBE);
                self.update_caps(&info);
                if let Some(buf) = frame.buffer_mut() {
                    buf.unset_flags(gst::BufferFlags::DELTA_UNIT);
                }
                obj.finish_frame(frame, info.frame_len as u32)?;
                Ok((gst::FlowSuccess::Ok, 0))
            }
            Scan::Frame { skip, .. } | Scan::NeedMore { skip } if skip > 0 => {
                gst::debug!(CAT, imp = self, "skipping {} bytes of garbage", skip);
                self.state.lock().unwrap().skipped += skip as u64;
                Ok((gst::FlowSuccess::Ok, skip as u32))
            }
            Scan::NeedMore { .. } | Scan::Frame { .. } => {
                if draining {
                    gst::warning!(
                        CAT,
                        imp = self,
                        "dropping {} trailing bytes that are no complete frame",
                        available
                    );
                    return Ok((gst::FlowSuccess::Ok, available as u32));
                }
                let more = (available as u32).saturating_mul(2).max(MIN_PROBE);
                obj.set_min_frame_size(more);
                Ok((gst::FlowSuccess::Ok, 0))
            }
            Scan::Garbage => {
                self.state.lock().unwrap().skipped += available as u64;
                Ok((gst::FlowSuccess::Ok, available as u32))
            }
        }
    }
}

enum Scan {
    /// A valid header starts `skip` bytes in.
    Frame { skip: usize, info: codec::FrameInfo },
    /// Bytes from `skip` on may start a frame; more data is needed to tell.
    NeedMore { skip: usize },
    /// No frame can start anywhere in the data.
    Garbage,
}

/// Finds the first offset where a frame header is valid (or could be, given more data).
fn scan(data: &[u8]) -> Scan {
    for skip in 0..data.len() {
        match codec::peek_frame(&data[skip..]) {
            Ok(Some(info)) => return Scan::Frame { skip, info },
            Ok(None) => return Scan::NeedMore { skip },
            Err(_) => continue,
        }
    }
    Scan::Garbage
}
