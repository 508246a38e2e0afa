// SPDX-License-Identifier: MIT OR Apache-2.0
use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct SicDec(ObjectSubclass<imp::SicDec>) @extends gst_video::VideoDecoder, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "sicdec",
        gst::Rank::PRIMARY,
        SicDec::static_type(),
    )
}
