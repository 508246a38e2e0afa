//! The SIC codec core: model bundle, entropy coding, layered bitstream. No GStreamer in here;
//! the elements, examples, benchmarks and tests all go through this API.
//!
//! PUBLIC API CONTRACT (the elements are written against these signatures; keep them stable).
//!
//! Module map:
//! - [`bundle`]: `model.json` parsing/validation, model id, ONNX sessions per graph.
//! - `bundle_cache`: one loaded bundle per process for users with the same model and options.
//! - `runtime`: the one process-wide ONNX Runtime environment.
//! - `entropy`: categorical entropy models built from the bundle's integer tables, ANS coding.
//! - [`bitstream`]: frame header layout (docs/bitstream.md), parse, validate, thin.
//! - `tensor`: packed 8-bit pixels <-> padded NCHW f32 tensors.
//! - `tiling`: heavy networks run tile by tile on large pictures, same result, bounded memory.
//! - `sampling`: the seeded generator for synonymous sampling.
//! - `encoder` / `decoder`: the coding rules of docs/model.md.

use std::fmt;
use std::path::PathBuf;

pub mod bitstream;
pub mod bundle;
mod bundle_cache;
mod decoder;
mod encoder;
mod entropy;
mod runtime;
mod sampling;
mod tensor;
mod tiling;

pub use bundle::Bundle;
pub use decoder::{Decoded, Decoder};
pub use encoder::{DEFAULT_RDO_LAMBDA, EncodedFrame, Encoder, MAX_RDO_LAMBDA};
pub use runtime::resolve_ort_library;

/// Largest accepted picture width or height.
pub const MAX_DIMENSION: u32 = 16384;
/// Largest accepted picture area (width × height).
pub const MAX_AREA: u64 = 1 << 26;

/// Pictures wider or taller than this many pixels run `g_a` and `g_s` in tiles of this size
/// (plus the margins the bundle states), with the same result: the working memory of a tile
/// (about 650 bytes per pixel on the CPU) then bounds what a picture of any size needs.
pub const DEFAULT_TILE_SIZE: u32 = 2048;

/// Checks a tile size: 0 (never tile) or a multiple of 64 up to [`MAX_DIMENSION`].
pub fn check_tile_size(tile: u32) -> Result<usize, Error> {
    if !tile.is_multiple_of(64) || tile > MAX_DIMENSION {
        return Err(Error::InvalidInput(format!(
            "tile size {tile} is not 0 or a multiple of 64 up to {MAX_DIMENSION}"
        )));
    }
    Ok(tile as usize)
}

/// Everything that can go wrong in the codec, with a message fit for a GStreamer error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// ONNX Runtime library missing or unloadable (message says where we looked and how to fix).
    Runtime(String),
    /// Model bundle missing, unreadable or invalid (message names the file).
    Model(String),
    /// Malformed / hostile / truncated bitstream.
    Bitstream(String),
    /// A frame made by another model (expected id, found id).
    ModelMismatch { expected: String, found: String },
    /// Bad caller input: zero or oversized picture, wrong buffer size, layers out of range.
    InvalidInput(String),
    /// A network failed while running.
    Inference(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Runtime(m) => write!(f, "ONNX Runtime: {m}"),
            Error::Model(m) => write!(f, "model bundle: {m}"),
            Error::Bitstream(m) => write!(f, "invalid SIC frame: {m}"),
            Error::ModelMismatch { expected, found } => write!(
                f,
                "SIC frame was made by model {found}, but the loaded model is {expected}"
            ),
            Error::InvalidInput(m) => write!(f, "invalid input: {m}"),
            Error::Inference(m) => write!(f, "network failed: {m}"),
        }
    }
}
impl std::error::Error for Error {}

/// Where ONNX Runtime runs the heavy networks (g_a, g_s). Entropy-parameter networks always run
/// on the CPU provider (docs/model.md explains why).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExecutionProvider {
    #[default]
    Auto,
    Cpu,
    Cuda,
}

impl fmt::Display for ExecutionProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ExecutionProvider::Auto => "auto",
            ExecutionProvider::Cpu => "cpu",
            ExecutionProvider::Cuda => "cuda",
        })
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeOptions {
    pub provider: ExecutionProvider,
    pub device_id: i32,
    /// Intra-op threads for the heavy networks; 0 = ONNX Runtime's default.
    pub threads: usize,
    /// Explicit path of libonnxruntime.so; None = ORT_DYLIB_PATH, then the setup script's place
    /// (`.ort/current/` of the source tree), then `sic/` beside the plugin library.
    pub ort_library: Option<PathBuf>,
}

/// Packed 8-bit pixel layouts accepted on input and produced on output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    Rgb,
    Bgr,
    Rgbx,
    Bgrx,
    Xrgb,
    Xbgr,
    Rgba,
    Bgra,
    Argb,
    Abgr,
}

impl PixelFormat {
    /// Every format, for tests and property listings.
    pub const ALL: [PixelFormat; 10] = [
        PixelFormat::Rgb,
        PixelFormat::Bgr,
        PixelFormat::Rgbx,
        PixelFormat::Bgrx,
        PixelFormat::Xrgb,
        PixelFormat::Xbgr,
        PixelFormat::Rgba,
        PixelFormat::Bgra,
        PixelFormat::Argb,
        PixelFormat::Abgr,
    ];

    /// Bytes per pixel (3 or 4).
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Rgb | PixelFormat::Bgr => 3,
            _ => 4,
        }
    }

    /// Byte offsets of R, G and B inside one pixel.
    pub fn rgb_offsets(self) -> [usize; 3] {
        match self {
            PixelFormat::Rgb | PixelFormat::Rgbx | PixelFormat::Rgba => [0, 1, 2],
            PixelFormat::Bgr | PixelFormat::Bgrx | PixelFormat::Bgra => [2, 1, 0],
            PixelFormat::Xrgb | PixelFormat::Argb => [1, 2, 3],
            PixelFormat::Xbgr | PixelFormat::Abgr => [3, 2, 1],
        }
    }

    /// Byte offset of the padding / alpha byte, if the format has one.
    pub fn filler_offset(self) -> Option<usize> {
        match self {
            PixelFormat::Rgb | PixelFormat::Bgr => None,
            PixelFormat::Rgbx | PixelFormat::Bgrx | PixelFormat::Rgba | PixelFormat::Bgra => {
                Some(3)
            }
            PixelFormat::Xrgb | PixelFormat::Xbgr | PixelFormat::Argb | PixelFormat::Abgr => {
                Some(0)
            }
        }
    }
}

/// A borrowed picture: `height` rows of `stride` bytes.
#[derive(Debug, Clone, Copy)]
pub struct ImageRef<'a> {
    pub width: u32,
    pub height: u32,
    pub stride: usize,
    pub format: PixelFormat,
    pub data: &'a [u8],
}

/// A tightly packed RGB8 picture (what the decoder returns).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

/// PSNR in dB between two 8-bit pictures (same layout, same length): infinite when identical,
/// NaN when the lengths differ or the pictures are empty.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    if a.len() != b.len() || a.is_empty() {
        return f64::NAN;
    }
    let sse: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    let mse = sse / a.len() as f64;
    10.0 * (255.0 * 255.0 / mse).log10()
}

impl RgbImage {
    /// Writes the picture into `dst` (rows of `stride` bytes) in `format`; alpha/padding = 255.
    pub fn write_to(
        &self,
        format: PixelFormat,
        stride: usize,
        dst: &mut [u8],
    ) -> Result<(), Error> {
        tensor::write_rgb(self, format, stride, dst)
    }

    /// This picture as an [`ImageRef`] (format `Rgb`, tight stride).
    pub fn as_image_ref(&self) -> ImageRef<'_> {
        ImageRef {
            width: self.width,
            height: self.height,
            stride: self.width as usize * 3,
            format: PixelFormat::Rgb,
            data: &self.data,
        }
    }
}

/// Wall-clock split of one encode or decode, in seconds.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    /// Pixel conversion, padding, tensor copies.
    pub convert: f64,
    /// Heavy networks (g_a or g_s).
    pub transform: f64,
    /// Entropy-parameter networks (h_s, slices).
    pub params: f64,
    /// Entropy coding / decoding.
    pub entropy: f64,
}

impl Timing {
    /// Sum of all parts.
    pub fn total(&self) -> f64 {
        self.convert + self.transform + self.params + self.entropy
    }
}

/// How the decoder fills slices the frame does not carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sampling {
    /// Synonymous sampling (paper's uniform noise around the mean), seeded.
    Uniform { seed: u64 },
    /// The conditional mean (deterministic).
    Mean,
}

/// Parsed frame header (no network needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameInfo {
    pub width: u32,
    pub height: u32,
    pub model_id: [u8; 8],
    pub levels: u8,
    pub layers: u8,
    /// Total frame length in bytes (header + all carried segments).
    pub frame_len: usize,
    pub header_len: usize,
}

/// Reads and validates a frame header at the start of `data` (which may hold more bytes after
/// the frame, or be a prefix: returns `Err` only for invalid bytes; `Ok(None)` when more bytes
/// are needed to know).
///
/// `Some` is returned as soon as the whole header is present and valid; `data` may then still
/// hold fewer than `frame_len` bytes (a parser waits for the rest).
pub fn peek_frame(data: &[u8]) -> Result<Option<FrameInfo>, Error> {
    Ok(bitstream::parse_header(data)?.map(|h| h.info()))
}

/// Drops trailing layers: the frame with its first `layers` layers, header rewritten, payload
/// bytes untouched. `layers >= carried` returns the frame unchanged.
pub fn thin(frame: &[u8], layers: u8) -> Result<Vec<u8>, Error> {
    bitstream::thin(frame, layers)
}

/// Formats an 8-byte model id as 16 lowercase hex digits.
pub fn model_id_to_hex(id: &[u8; 8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a picture size against the codec's limits.
pub(crate) fn check_dimensions(width: u32, height: u32) -> Result<(), String> {
    if width == 0 || height == 0 {
        return Err(format!("picture size {width}x{height} is empty"));
    }
    if width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(format!(
            "picture size {width}x{height} exceeds the limit of {MAX_DIMENSION} per side"
        ));
    }
    if width as u64 * height as u64 > MAX_AREA {
        return Err(format!(
            "picture size {width}x{height} exceeds the limit of {MAX_AREA} pixels"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod psnr_tests {
    use super::psnr;

    #[test]
    fn psnr_known_values() {
        // MSE 1 → 10·log10(255²) = 48.13 dB.
        assert!((psnr(&[10, 20], &[11, 19]) - 48.1308).abs() < 1e-3);
        assert_eq!(psnr(&[5, 6], &[5, 6]), f64::INFINITY);
        assert!(psnr(&[1], &[1, 2]).is_nan());
        assert!(psnr(&[], &[]).is_nan());
    }
}
