// SPDX-License-Identifier: MIT OR Apache-2.0
use gst::glib;
use gst::prelude::*;

mod imp;

glib::wrapper! {
    pub struct RtpSicPay(ObjectSubclass<imp::RtpSicPay>) @extends gst_rtp::RTPBasePayload, gst::Element, gst::Object;
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::Element::register(
        Some(plugin),
        "rtpsicpay",
        gst::Rank::MARGINAL,
        RtpSicPay::static_type(),
    )
}
