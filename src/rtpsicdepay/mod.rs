// SPDX-License-Identifier: MIT OR Apache-2.0
use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct RtpSicDepay(ObjectSubclass<imp::RtpSicDepay>) @extends gst_rtp::RTPBaseDepayload, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rtpsicdepay",
        gst::Rank::MARGINAL,
        RtpSicDepay::static_type(),
    )
}
