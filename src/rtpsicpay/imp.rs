// SPDX-License-Identifier: MIT OR Apache-2.0
//! `rtpsicpay`: SIC frames into RTP packets (payload format in docs/rtp.md).
//!
//! Each packet carries a 4-byte big-endian offset of its first byte within the frame, then the
//! bytes. A frame goes out in order, cut to the MTU; the marker bit is set on its last packet and
//! every packet of a frame has the frame's RTP timestamp. Because a SIC frame stores its layers
//! in order, a receiver that loses a packet can still decode the layers before it
//! (`rtpsicdepay`).

use std::sync::LazyLock;

use gst::glib;
use gst::subclass::prelude::*;
use gst_rtp::prelude::*;
use gst_rtp::subclass::prelude::*;

use crate::codec;
use crate::common;

static CAT: LazyLock<gst::DebugCategory> = LazyLock::new(|| {
    gst::DebugCategory::new(
        "rtpsicpay",
        gst::DebugColorFlags::empty(),
        Some("RTP SIC payloader"),
    )
});

#[derive(Default)]
pub struct RtpSicPay {}

#[glib::object_subclass]
impl ObjectSubclass for RtpSicPay {
    const NAME: &'static str = "GstRtpSicPay";
    type Type = super::RtpSicPay;
    type ParentType = gst_rtp::RTPBasePayload;
}

impl ObjectImpl for RtpSicPay {}

impl GstObjectImpl for RtpSicPay {}

impl ElementImpl for RtpSicPay {
    fn metadata() -> Option<&'static gst::subclass::ElementMetadata> {
        static ELEMENT_METADATA: LazyLock<gst::subclass::ElementMetadata> = LazyLock::new(|| {
            gst::subclass::ElementMetadata::new(
                "RTP SIC payloader",
                "Codec/Payloader/Network/RTP",
                "Packs SIC frames into RTP packets, in layer order, so that a receiver missing a \
                 packet still decodes the layers before it",
                "SIC project",
            )
        });
        Some(&*ELEMENT_METADATA)
    }

    fn pad_templates() -> &'static [gst::PadTemplate] {
        static PAD_TEMPLATES: LazyLock<Vec<gst::PadTemplate>> = LazyLock::new(|| {
            let sink = gst::Caps::builder(common::SIC_MEDIA_TYPE).build();
            vec![
                gst::PadTemplate::new(
                    "sink",
                    gst::PadDirection::Sink,
                    gst::PadPresence::Always,
                    &sink,
                )
                .unwrap(),
                gst::PadTemplate::new(
                    "src",
                    gst::PadDirection::Src,
                    gst::PadPresence::Always,
                    &common::rtp_sic_caps(),
                )
                .unwrap(),
            ]
        });
        PAD_TEMPLATES.as_ref()
    }
}

impl RTPBasePayloadImpl for RtpSicPay {
    fn set_caps(&self, _caps: &gst::Caps) -> Result<(), gst::LoggableError> {
        let obj = self.obj();
        obj.set_options(
            "video",
            true,
            common::RTP_ENCODING_NAME,
            common::RTP_CLOCK_RATE,
        );
        obj.set_outcaps(None)
            .map_err(|e| gst::loggable_error!(CAT, "cannot set the RTP caps: {}", e))
    }

    fn handle_buffer(&self, buffer: gst::Buffer) -> Result<gst::FlowSuccess, gst::FlowError> {
        let obj = self.obj();
        let map = buffer.map_readable().map_err(|_| gst::FlowError::Error)?;
        let frame = map.as_slice();
        // Only whole, valid frames go on the wire: a receiver can do nothing with the rest.
        match codec::peek_frame(frame) {
            Ok(Some(info)) if info.frame_len == frame.len() => {}
            Ok(Some(info)) => {
                gst::warning!(
                    CAT,
                    imp = self,
                    "dropping a buffer of {} bytes: its frame header announces {}",
                    frame.len(),
                    info.frame_len
                );
                return Ok(gst::FlowSuccess::Ok);
            }
            Ok(None) | Err(_) => {
                gst::warning!(
                    CAT,
                    imp = self,
                    "dropping a buffer of {} bytes that is not a SIC frame",
                    frame.len()
                );
                return Ok(gst::FlowSuccess::Ok);
            }
        }

        let room = gst_rtp::calc_payload_len(obj.mtu(), 0, 0) as usize;
        let chunk_len = room.saturating_sub(common::RTP_PAYLOAD_HEADER_LEN);
        if chunk_len == 0 {
            gst::element_imp_error!(
                self,
                gst::StreamError::Encode,
                (
                    "mtu {} leaves no room for SIC data in an RTP packet",
                    obj.mtu()
                )
            );
            return Err(gst::FlowError::Error);
        }
        let packets = frame.len().div_ceil(chunk_len);
        let mut list = gst::BufferList::new_sized(packets);
        let list_mut = list.get_mut().unwrap();
        for (i, chunk) in frame.chunks(chunk_len).enumerate() {
            let offset = (i * chunk_len) as u32; // frames are at most 2^29 bytes
            let mut packet = gst::Buffer::new_rtp_with_sizes(
                (common::RTP_PAYLOAD_HEADER_LEN + chunk.len()) as u32,
                0,
                0,
            )
            .map_err(|_| gst::FlowError::Error)?;
            {
                let packet_mut = packet.get_mut().unwrap();
                packet_mut.set_pts(buffer.pts());
                let mut rtp = gst_rtp::RTPBuffer::from_buffer_writable(packet_mut)
                    .map_err(|_| gst::FlowError::Error)?;
                let payload = rtp.payload_mut().map_err(|_| gst::FlowError::Error)?;
                payload[..common::RTP_PAYLOAD_HEADER_LEN].copy_from_slice(&offset.to_be_bytes());
                payload[common::RTP_PAYLOAD_HEADER_LEN..].copy_from_slice(chunk);
                rtp.set_marker(i + 1 == packets);
            }
            list_mut.add(packet);
        }
        gst::trace!(
            CAT,
            imp = self,
            "frame of {} bytes in {packets} packets",
            frame.len()
        );
        drop(map);
        obj.push_list(list)
    }
}
