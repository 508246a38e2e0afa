// SPDX-License-Identifier: MIT OR Apache-2.0
//! GStreamer plugin `sic`: Synonymous Image Compression elements.
//!
//! - `sicenc`: raw RGB video to `video/x-sic` (layers negotiated with downstream)
//! - `sicdec`: `video/x-sic` to raw RGB video
//! - `siclayers`: drops trailing layers in the compressed domain
//! - `sicparse` + typefinder: frames a SIC byte stream (files, TCP)
//! - `rtpsicpay` / `rtpsicdepay`: SIC over RTP; a frame that lost a packet keeps its first layers
#![allow(clippy::new_without_default)]

use gst::glib;

pub mod codec;
mod common;
mod rtpsicdepay;
mod rtpsicpay;
mod sicdec;
mod sicenc;
mod siclayers;
mod sicparse;
mod typefind;

pub use common::{ExecutionProvider, FRAME_STATS_MESSAGE, SamplingMode};

fn plugin_init(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    sicenc::register(plugin)?;
    sicdec::register(plugin)?;
    siclayers::register(plugin)?;
    sicparse::register(plugin)?;
    rtpsicpay::register(plugin)?;
    rtpsicdepay::register(plugin)?;
    typefind::register(plugin)?;
    Ok(())
}

gst::plugin_define!(
    sic,
    env!("CARGO_PKG_DESCRIPTION"),
    plugin_init,
    concat!(env!("CARGO_PKG_VERSION"), "-", env!("COMMIT_ID")),
    "MIT/X11",
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_NAME"),
    env!("CARGO_PKG_REPOSITORY"),
    env!("BUILD_REL_DATE")
);
