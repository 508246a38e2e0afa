// SPDX-License-Identifier: MIT OR Apache-2.0
use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct SicEnc(ObjectSubclass<imp::SicEnc>) @extends gst_video::VideoEncoder, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "sicenc",
        gst::Rank::PRIMARY,
        SicEnc::static_type(),
    )
}
