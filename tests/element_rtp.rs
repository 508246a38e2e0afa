// SPDX-License-Identifier: MIT OR Apache-2.0
//! `rtpsicpay` / `rtpsicdepay`: byte-exact round trip, packets within the MTU, a lost packet
//! costing only the layers from it on, hostile packets.

mod sic_elements_util;

use gst::prelude::*;
use gst_rtp::prelude::*;
use gstsic::codec::bitstream;
use sic_elements_util as util;

const RTP_CAPS: &str =
    "application/x-rtp,media=video,clock-rate=90000,encoding-name=X-SIC,payload=96";

/// Packets of `frames` (one every 100 ms) from `rtpsicpay mtu=<mtu>`, per frame.
fn packetize(frames: &[Vec<u8>], mtu: u32) -> Vec<Vec<gst::Buffer>> {
    util::init();
    let mut h = gst_check::Harness::new("rtpsicpay");
    h.element().unwrap().set_property("mtu", mtu);
    h.set_src_caps_str("video/x-sic");
    frames
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut buf = gst::Buffer::from_slice(f.clone());
            let pts = gst::ClockTime::from_mseconds(100 * i as u64);
            buf.get_mut().unwrap().set_pts(pts);
            h.push(buf).unwrap();
            let mut packets = Vec::new();
            while let Some(p) = h.try_pull() {
                packets.push(p);
            }
            packets
        })
        .collect()
}

/// What `rtpsicdepay` makes of `packets` (then EOS), with its salvaged and dropped counts.
fn depayload(packets: impl IntoIterator<Item = gst::Buffer>) -> (Vec<Vec<u8>>, u64, u64) {
    let (frames, _, salvaged, dropped) = depayload_timed(packets);
    (frames, salvaged, dropped)
}

/// [`depayload`], with the output timestamps (ms).
fn depayload_timed(
    packets: impl IntoIterator<Item = gst::Buffer>,
) -> (Vec<Vec<u8>>, Vec<u64>, u64, u64) {
    util::init();
    let mut h = gst_check::Harness::new("rtpsicdepay");
    h.set_src_caps_str(RTP_CAPS);
    for p in packets {
        h.push(p).unwrap();
    }
    h.push_event(gst::event::Eos::new());
    let out: Vec<_> = std::iter::from_fn(|| h.try_pull()).collect();
    let pts = out.iter().map(|b| b.pts().unwrap().mseconds()).collect();
    let frames = out
        .iter()
        .map(|b| b.map_readable().unwrap().to_vec())
        .collect();
    let dec = h.element().unwrap();
    (
        frames,
        pts,
        dec.property("frames-salvaged"),
        dec.property("frames-dropped"),
    )
}

fn rtp(packet: &gst::Buffer) -> gst_rtp::RTPBuffer<'_, gst_rtp::rtp_buffer::Readable> {
    gst_rtp::RTPBuffer::from_buffer_readable(packet).unwrap()
}

/// Offset in its frame of a packet's first byte (the payload header).
fn offset(packet: &gst::Buffer) -> usize {
    let r = rtp(packet);
    let p = r.payload().unwrap();
    u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize
}

#[test]
fn round_trip_is_byte_exact_within_the_mtu() {
    let frames = util::encode_frames(64, 48, 3, 8);
    let mtu = 120;
    let packets = packetize(&frames, mtu);
    for (frame, packets) in frames.iter().zip(&packets) {
        assert!(
            packets.len() > 2,
            "{} bytes in {} packets",
            frame.len(),
            packets.len()
        );
        let ts = rtp(&packets[0]).timestamp();
        for (i, p) in packets.iter().enumerate() {
            assert!(p.size() <= mtu as usize);
            assert_eq!(rtp(p).is_marker(), i + 1 == packets.len());
            assert_eq!(rtp(p).timestamp(), ts);
        }
    }
    let (out, salvaged, dropped) = depayload(packets.into_iter().flatten());
    assert_eq!(out, frames);
    assert_eq!((salvaged, dropped), (0, 0));
}

/// Losing any one packet of a frame leaves exactly the layers wholly before it: the frame the
/// encoder would have written for that many layers, which decodes.
#[test]
fn lost_packet_keeps_the_layers_before_it() {
    let frames = util::encode_frames(64, 48, 1, 8);
    let frame = &frames[0];
    let packets = packetize(&frames, 100).remove(0);
    let (header, _) = bitstream::split_frame(frame).unwrap();
    // Frame offset where layer k (1-based) ends.
    let layer_end =
        |k: usize| header.header_len() + header.segment_lens[..=k].iter().sum::<u32>() as usize;
    let mut salvaged_layers = Vec::new();
    for lost in 0..packets.len() {
        let gap = offset(&packets[lost]);
        let kept = (1..=header.layers as usize)
            .filter(|&k| layer_end(k) <= gap)
            .max();
        let rest = packets
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != lost)
            .map(|(_, p)| p.clone());
        let (out, salvaged, dropped) = depayload(rest);
        match kept {
            Some(k) => {
                assert_eq!(
                    out,
                    [gstsic::codec::thin(frame, k as u8).unwrap()],
                    "lost {lost}"
                );
                assert_eq!((salvaged, dropped), (1, 0));
                salvaged_layers.push(k);
            }
            None => {
                assert!(out.is_empty(), "lost {lost}: header or layer 1 incomplete");
                assert_eq!((salvaged, dropped), (0, 1));
            }
        }
    }
    eprintln!(
        "{} packets; layers kept per lost packet: {salvaged_layers:?}",
        packets.len()
    );
    assert!(salvaged_layers.len() > 2, "{salvaged_layers:?}");
    // A salvaged frame decodes to the full picture size.
    let mut decoder = gstsic::codec::Decoder::new(util::bundle());
    let salvaged = gstsic::codec::thin(frame, salvaged_layers[0] as u8).unwrap();
    let picture = decoder
        .decode(&salvaged, 0, gstsic::codec::Sampling::Mean)
        .unwrap();
    assert_eq!((picture.image.width, picture.image.height), (64, 48));
    assert_eq!(picture.layers, salvaged_layers[0] as u8);
}

/// A frame whose first packet is lost is dropped; its neighbours come through whole. A frame
/// whose last packet (the marker) is lost ends at the next frame's timestamp.
#[test]
fn lost_header_or_marker_costs_one_frame_at_most() {
    let frames = util::encode_frames(48, 32, 3, 8);
    let packets = packetize(&frames, 150);
    let mut stream: Vec<_> = packets.iter().flatten().cloned().collect();
    let first_of_second = packets[0].len();
    stream.remove(first_of_second);
    let (out, salvaged, dropped) = depayload(stream);
    assert_eq!(out, [frames[0].clone(), frames[2].clone()]);
    assert_eq!((salvaged, dropped), (0, 1));

    let mut stream: Vec<_> = packets.iter().flatten().cloned().collect();
    stream.remove(packets[0].len() - 1);
    let (out, pts, _, _) = depayload_timed(stream);
    assert_eq!(out.len(), 3);
    assert_eq!(pts, [0, 100, 200], "each frame keeps its own time");
    assert_eq!(&out[1..], &frames[1..]);
    assert!(bitstream::split_frame(&out[0]).is_ok());
}

/// Random payloads, offsets (up to u32::MAX), timestamps and markers: no panic, and whatever
/// comes out is a valid frame.
#[test]
fn hostile_packets_give_valid_frames_or_nothing() {
    let frames = util::encode_frames(48, 32, 2, 8);
    let real: Vec<gst::Buffer> = packetize(&frames, 90).into_iter().flatten().collect();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..40 {
        let mut stream = Vec::new();
        for i in 0..30 {
            let r = next();
            let packet = if r % 3 == 0 {
                // A real packet with a byte flipped, or as it is.
                let mut p = real[(r as usize >> 8) % real.len()].copy_deep().unwrap();
                if r & 0x10 != 0 {
                    let mut map = p.get_mut().unwrap().map_writable().unwrap();
                    let at = 12 + (r as usize >> 20) % (map.len() - 12);
                    map[at] ^= 1 << (r % 8);
                }
                p
            } else {
                let len = (r >> 8) as usize % 80;
                let mut b = gst::Buffer::new_rtp_with_sizes(len as u32, 0, 0).unwrap();
                {
                    let mut w =
                        gst_rtp::RTPBuffer::from_buffer_writable(b.get_mut().unwrap()).unwrap();
                    w.set_timestamp((r >> 40) as u32 % 4);
                    w.set_marker(r & 1 != 0);
                    w.set_seq(i);
                    let payload = w.payload_mut().unwrap();
                    for (j, x) in payload.iter_mut().enumerate() {
                        *x = (next() >> (j % 7)) as u8;
                    }
                    if len >= 4 && r & 2 != 0 {
                        let big = u32::MAX - (r >> 32) as u32 % 1000;
                        payload[..4].copy_from_slice(&big.to_be_bytes());
                    }
                }
                b
            };
            stream.push(packet);
        }
        let (out, _, _) = depayload(stream);
        for f in out {
            assert!(bitstream::split_frame(&f).is_ok(), "round {round}");
        }
    }
}

/// `sicenc ! rtpsicpay ! rtpsicdepay ! sicdec` in one pipeline.
#[test]
fn pipeline_through_rtp_decodes() {
    let run = util::run_pipeline(
        "videotestsrc num-buffers=3 ! video/x-raw,format=RGB,width=64,height=48,framerate=10/1 ! \
         sicenc layers=3 ! rtpsicpay mtu=200 ! rtpsicdepay ! sicdec ! appsink name=out sync=false",
        std::time::Duration::from_secs(60),
    );
    assert!(run.eos, "{:?}", run.error);
    assert_eq!(run.samples("out").len(), 3);
}

#[test]
fn properties_are_documented() {
    util::init();
    for factory in ["rtpsicpay", "rtpsicdepay"] {
        let e = gst::ElementFactory::make(factory).build().unwrap();
        for p in e.list_properties() {
            assert!(
                !p.blurb().unwrap_or_default().is_empty(),
                "{factory}: {} has no blurb",
                p.name()
            );
        }
    }
    let depay = gst::ElementFactory::make("rtpsicdepay").build().unwrap();
    assert_eq!(depay.property::<u64>("frames-salvaged"), 0);
    assert_eq!(depay.property::<u64>("frames-dropped"), 0);
}
