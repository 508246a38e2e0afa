// SPDX-License-Identifier: MIT OR Apache-2.0
use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct SicParse(ObjectSubclass<imp::SicParse>) @extends gst_base::BaseParse, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "sicparse",
        gst::Rank::PRIMARY + 1,
        SicParse::static_type(),
    )
}
