// SPDX-License-Identifier: MIT OR Apache-2.0
//! Typefinder for SIC byte streams (`.sic` files): `video/x-sic`.
//!
//! Probability: MAXIMUM when a valid frame header is followed by another valid header (or the
//! frame ends exactly at the end of the data), LIKELY for one valid header alone.

use gst::glib;

use crate::codec;
use crate::common;

/// Largest header prefix the typefinder peeks at while looking for a complete header.
const MAX_HEADER_PROBE: u32 = 64 * 1024;

/// Reads a frame header at `offset`, peeking more bytes while the codec needs them.
fn header_at(tf: &mut gst::TypeFind, offset: u64) -> Option<codec::FrameInfo> {
    let mut size = 32u32;
    let left = tf.length().map(|l| l.saturating_sub(offset));
    loop {
        let data = match tf.peek(offset as i64, size) {
            Some(d) => d,
            // Near the end of the data: take what is left.
            None => match left {
                Some(left) if left > 0 && left < u64::from(size) => {
                    tf.peek(offset as i64, left as u32)?
                }
                _ => return None,
            },
        };
        let at_end = data.len() < size as usize;
        match codec::peek_frame(data) {
            Ok(Some(info)) => return Some(info),
            Ok(None) if !at_end && size < MAX_HEADER_PROBE => size *= 4,
            _ => return None,
        }
    }
}

fn find(tf: &mut gst::TypeFind) {
    let Some(first) = header_at(tf, 0) else {
        return;
    };
    let caps = gst::Caps::builder(common::SIC_MEDIA_TYPE).build();
    let next_offset = first.frame_len as u64;
    let ends_exactly = tf.length() == Some(next_offset);
    let probability = if ends_exactly || header_at(tf, next_offset).is_some() {
        gst::TypeFindProbability::Maximum
    } else {
        gst::TypeFindProbability::Likely
    };
    tf.suggest(probability, &caps);
}

pub fn register(plugin: &gst::Plugin) -> Result<(), glib::BoolError> {
    gst::TypeFind::register(
        Some(plugin),
        "sic_typefind",
        gst::Rank::PRIMARY,
        Some("sic"),
        Some(&gst::Caps::builder(common::SIC_MEDIA_TYPE).build()),
        find,
    )
}
