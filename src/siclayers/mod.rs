// SPDX-License-Identifier: MIT OR Apache-2.0
use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct SicLayers(ObjectSubclass<imp::SicLayers>) @extends gst_base::BaseTransform, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "siclayers",
        gst::Rank::NONE,
        SicLayers::static_type(),
    )
}
