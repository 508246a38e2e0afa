//! SIC frame layout: header write / parse / validate, segment split, thinning.
//! docs/bitstream.md is the byte-level description; keep the two in step.
//!
//! Every byte handed to this module is treated as hostile: every field is range-checked before
//! use, lengths are summed in 64 bits, nothing is allocated from a length field, and no input
//! makes it panic.

use super::{Error, FrameInfo, MAX_DIMENSION, check_dimensions};

/// First four bytes of every frame.
pub const MAGIC: [u8; 4] = [0x8B, b'S', b'I', b'C'];
/// Version of the frame layout written by this code.
pub const FORMAT_VERSION: u8 = 1;
/// Largest number of levels (layers) a model may have.
pub const MAX_LEVELS: u8 = 64;
/// Bytes before the segment length table.
pub const FIXED_HEADER_LEN: usize = 20;
/// Largest accepted segment.
pub const MAX_SEGMENT_LEN: u32 = 1 << 28;
/// Largest accepted frame (header + segments).
pub const MAX_FRAME_LEN: u64 = 1 << 29;

/// Header length of a frame carrying `layers` layers.
pub const fn header_len(layers: u8) -> usize {
    FIXED_HEADER_LEN + 4 * (layers as usize + 1) + 4
}

/// A parsed (or to-be-written) frame header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub model_id: [u8; 8],
    pub width: u32,
    pub height: u32,
    pub levels: u8,
    pub layers: u8,
    /// `layers + 1` segment lengths in bytes: segment 0 = z, segment k = slice k-1.
    pub segment_lens: Vec<u32>,
}

impl Header {
    pub fn header_len(&self) -> usize {
        header_len(self.layers)
    }

    pub fn payload_len(&self) -> usize {
        self.segment_lens.iter().map(|&l| l as usize).sum()
    }

    pub fn frame_len(&self) -> usize {
        self.header_len() + self.payload_len()
    }

    pub fn info(&self) -> FrameInfo {
        FrameInfo {
            width: self.width,
            height: self.height,
            model_id: self.model_id,
            levels: self.levels,
            layers: self.layers,
            frame_len: self.frame_len(),
            header_len: self.header_len(),
        }
    }

    /// Serialises the header (CRC included). The fields must be valid (as [`parse_header`]
    /// checks them): `segment_lens` holds `layers + 1` entries, width and height fit 16 bits.
    pub fn to_bytes(&self) -> Vec<u8> {
        debug_assert_eq!(self.segment_lens.len(), self.layers as usize + 1);
        let mut out = Vec::with_capacity(self.header_len());
        out.extend_from_slice(&MAGIC);
        out.push(FORMAT_VERSION);
        out.push(0); // flags, reserved
        out.push(self.levels);
        out.push(self.layers);
        out.extend_from_slice(&self.model_id);
        out.extend_from_slice(&(self.width as u16).to_le_bytes());
        out.extend_from_slice(&(self.height as u16).to_le_bytes());
        for &len in &self.segment_lens {
            out.extend_from_slice(&len.to_le_bytes());
        }
        let crc = crc32(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Bitstream(msg.into())
}

fn u16_at(d: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([d[at], d[at + 1]])
}

fn u32_at(d: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([d[at], d[at + 1], d[at + 2], d[at + 3]])
}

/// Parses the header at the start of `data`. `Ok(None)`: `data` is a valid prefix, more bytes
/// are needed. Fields are checked as soon as their bytes are present, so garbage is rejected
/// early (a parser can resync quickly).
pub fn parse_header(data: &[u8]) -> Result<Option<Header>, Error> {
    let have = data.len().min(MAGIC.len());
    if data[..have] != MAGIC[..have] {
        return Err(bad("bad magic (not a SIC frame)"));
    }
    if data.len() < 8 {
        if data.len() > 4 && data[4] != FORMAT_VERSION {
            return Err(bad(format!(
                "unsupported format version {} (this build reads {FORMAT_VERSION})",
                data[4]
            )));
        }
        if data.len() > 5 && data[5] != 0 {
            return Err(bad(format!(
                "reserved flags byte is {:#04x}, want 0",
                data[5]
            )));
        }
        if data.len() > 6 && !(1..=MAX_LEVELS).contains(&data[6]) {
            return Err(bad(format!(
                "levels {} out of range 1..={MAX_LEVELS}",
                data[6]
            )));
        }
        return Ok(None);
    }
    let (version, flags, levels, layers) = (data[4], data[5], data[6], data[7]);
    if version != FORMAT_VERSION {
        return Err(bad(format!(
            "unsupported format version {version} (this build reads {FORMAT_VERSION})"
        )));
    }
    if flags != 0 {
        return Err(bad(format!("reserved flags byte is {flags:#04x}, want 0")));
    }
    if !(1..=MAX_LEVELS).contains(&levels) {
        return Err(bad(format!(
            "levels {levels} out of range 1..={MAX_LEVELS}"
        )));
    }
    if layers == 0 || layers > levels {
        return Err(bad(format!("carries {layers} layers, want 1..={levels}")));
    }
    if data.len() < FIXED_HEADER_LEN {
        return Ok(None);
    }
    let mut model_id = [0u8; 8];
    model_id.copy_from_slice(&data[8..16]);
    let width = u16_at(data, 16) as u32;
    let height = u16_at(data, 18) as u32;
    check_dimensions(width, height).map_err(bad)?;
    debug_assert!(width <= MAX_DIMENSION);
    let hlen = header_len(layers);
    if data.len() < hlen {
        return Ok(None);
    }
    let crc_stored = u32_at(data, hlen - 4);
    let crc = crc32(&data[..hlen - 4]);
    if crc != crc_stored {
        return Err(bad(format!(
            "header checksum mismatch (stored {crc_stored:08x}, computed {crc:08x})"
        )));
    }
    let mut segment_lens = Vec::with_capacity(layers as usize + 1);
    let mut total = hlen as u64;
    for i in 0..=layers as usize {
        let len = u32_at(data, FIXED_HEADER_LEN + 4 * i);
        if !len.is_multiple_of(4) {
            return Err(bad(format!(
                "segment {i} length {len} is not a multiple of 4"
            )));
        }
        if len > MAX_SEGMENT_LEN {
            return Err(bad(format!(
                "segment {i} length {len} exceeds the limit of {MAX_SEGMENT_LEN}"
            )));
        }
        total += len as u64;
        segment_lens.push(len);
    }
    if total > MAX_FRAME_LEN {
        return Err(bad(format!(
            "frame length {total} exceeds the limit of {MAX_FRAME_LEN}"
        )));
    }
    Ok(Some(Header {
        model_id,
        width,
        height,
        levels,
        layers,
        segment_lens,
    }))
}

/// Parses a complete frame (exactly one, no trailing bytes) into its header and segments.
pub fn split_frame(frame: &[u8]) -> Result<(Header, Vec<&[u8]>), Error> {
    let header = match parse_header(frame)? {
        Some(h) => h,
        None => {
            return Err(bad(format!(
                "truncated: {} bytes do not hold a whole header",
                frame.len()
            )));
        }
    };
    let want = header.frame_len();
    if frame.len() < want {
        return Err(bad(format!(
            "truncated: header announces {want} bytes, frame has {}",
            frame.len()
        )));
    }
    if frame.len() > want {
        return Err(bad(format!(
            "{} unexpected bytes after the frame's {want} bytes",
            frame.len() - want
        )));
    }
    let mut segments = Vec::with_capacity(header.segment_lens.len());
    let mut at = header.header_len();
    for &len in &header.segment_lens {
        let end = at + len as usize;
        segments.push(&frame[at..end]);
        at = end;
    }
    Ok((header, segments))
}

/// Assembles a frame from its header fields and segments.
pub fn assemble(
    model_id: [u8; 8],
    width: u32,
    height: u32,
    levels: u8,
    segments: &[Vec<u8>],
) -> Vec<u8> {
    let header = Header {
        model_id,
        width,
        height,
        levels,
        layers: (segments.len() - 1) as u8,
        segment_lens: segments.iter().map(|s| s.len() as u32).collect(),
    };
    let mut out = header.to_bytes();
    out.reserve(header.payload_len());
    for s in segments {
        out.extend_from_slice(s);
    }
    out
}

/// See [`super::thin`].
pub fn thin(frame: &[u8], layers: u8) -> Result<Vec<u8>, Error> {
    if layers == 0 {
        return Err(Error::InvalidInput(
            "a frame must keep at least 1 layer".into(),
        ));
    }
    let (header, _) = split_frame(frame)?;
    if layers >= header.layers {
        return Ok(frame.to_vec());
    }
    let kept = Header {
        layers,
        segment_lens: header.segment_lens[..=layers as usize].to_vec(),
        ..header.clone()
    };
    let start = header.header_len();
    let end = start + kept.payload_len();
    let mut out = kept.to_bytes();
    out.extend_from_slice(&frame[start..end]);
    Ok(out)
}

/// The frame made of the layers whose segments lie wholly inside `data`, the start of a frame
/// whose end is missing (a transport lost a piece; only a prefix is usable, since segment k
/// needs segments < k). `Ok(None)` when the header, segment 0 (`ẑ`) or segment 1 (the first
/// layer) is incomplete: nothing is decodable. Like [`thin`], it rewrites only the header; no
/// payload byte changes.
pub fn salvage(data: &[u8]) -> Result<Option<Vec<u8>>, Error> {
    let Some(header) = parse_header(data)? else {
        return Ok(None);
    };
    let mut end = header.header_len();
    let mut segments = 0;
    for &len in &header.segment_lens {
        if end + len as usize > data.len() {
            break;
        }
        end += len as usize;
        segments += 1;
    }
    if segments < 2 {
        return Ok(None);
    }
    let layers = (segments - 1) as u8;
    let mut out = Header {
        layers,
        segment_lens: header.segment_lens[..segments].to_vec(),
        ..header.clone()
    }
    .to_bytes();
    out.extend_from_slice(&data[header.header_len()..end]);
    Ok(Some(out))
}

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC_TABLE: [u32; 256] = crc_table();

/// CRC-32 (IEEE 802.3 polynomial, reflected, init and final xor 0xFFFFFFFF; the zlib/PNG one).
pub fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c = CRC_TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    c ^ 0xFFFF_FFFF
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(layers: u8) -> Vec<u8> {
        let segs: Vec<Vec<u8>> = (0..=layers)
            .map(|i| vec![i + 1; 4 * (i as usize + 1)])
            .collect();
        assemble([1, 2, 3, 4, 5, 6, 7, 8], 65, 17, 8, &segs)
    }

    #[test]
    fn crc32_known_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn header_round_trip() {
        let f = sample(3);
        let (h, segs) = split_frame(&f).unwrap();
        assert_eq!((h.width, h.height, h.levels, h.layers), (65, 17, 8, 3));
        assert_eq!(segs.len(), 4);
        assert_eq!(segs[2], &[3u8; 12][..]);
        assert_eq!(h.frame_len(), f.len());
    }

    #[test]
    fn salvage_keeps_the_whole_layers_of_a_cut_frame() {
        let f = sample(5);
        let (h, _) = split_frame(&f).unwrap();
        // End of segment k (0 = z) in the frame.
        let seg_end = |k: usize| {
            h.header_len()
                + h.segment_lens[..=k]
                    .iter()
                    .map(|&l| l as usize)
                    .sum::<usize>()
        };
        assert_eq!(salvage(&f).unwrap().unwrap(), f);
        for layers in 1..5u8 {
            let end = seg_end(layers as usize);
            let want = thin(&f, layers).unwrap();
            assert_eq!(salvage(&f[..end]).unwrap().unwrap(), want);
            assert_eq!(salvage(&f[..end + 3]).unwrap().unwrap(), want);
        }
        for cut in [0, 5, h.header_len(), seg_end(0), seg_end(1) - 1] {
            assert_eq!(salvage(&f[..cut]).unwrap(), None, "cut at {cut}");
        }
        let mut bad = f.clone();
        bad[0] ^= 1;
        assert!(salvage(&bad).is_err());
    }

    #[test]
    fn thin_keeps_payload_prefix() {
        let f = sample(5);
        let t = thin(&f, 2).unwrap();
        let (h, segs) = split_frame(&t).unwrap();
        assert_eq!(h.layers, 2);
        assert_eq!(segs.len(), 3);
        assert_eq!(t, sample(2));
        assert_eq!(thin(&f, 9).unwrap(), f);
        assert!(thin(&f, 0).is_err());
    }

    #[test]
    fn prefixes_need_more_bytes() {
        let f = sample(4);
        let hl = header_len(4);
        for n in 0..hl {
            assert_eq!(parse_header(&f[..n]).unwrap(), None, "prefix {n}");
        }
        assert!(parse_header(&f[..hl]).unwrap().is_some());
    }
}
