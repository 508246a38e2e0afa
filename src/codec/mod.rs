//! The SIC codec core: model bundle, entropy coding, layered bitstream. No GStreamer in here;
//! the elements, examples, benchmarks and tests all go through this API.
//!
//! PUBLIC API CONTRACT (the elements are written against these signatures; keep them stable).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

// Submodules (implementations): bundle, entropy, bitstream, tensor, runtime, sampling ...

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
        todo!()
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

#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    pub provider: ExecutionProvider,
    pub device_id: i32,
    /// Intra-op threads for the heavy networks; 0 = ONNX Runtime's default.
    pub threads: usize,
    /// Explicit path of libonnxruntime.so; None = ORT_DYLIB_PATH, then the setup script's place.
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

impl RgbImage {
    /// Writes the picture into `dst` (rows of `stride` bytes) in `format`; alpha/padding = 255.
    pub fn write_to(&self, format: PixelFormat, stride: usize, dst: &mut [u8]) -> Result<(), Error> {
        todo!()
    }
}

/// Loaded model: metadata + ONNX sessions. Cheap to share between elements (Arc).
pub struct Bundle {/* private */}

impl Bundle {
    /// Loads and validates `dir/model.json` and its graphs. Initialises the process-wide ONNX
    /// Runtime environment on first use.
    pub fn load(dir: &std::path::Path, opts: &RuntimeOptions) -> Result<Arc<Bundle>, Error> {
        todo!()
    }
    /// The directory of the bundle the plugin ships/finds when nothing is configured
    /// (SIC_MODEL_DIR, then next to the plugin library, then the source tree's models/sic-lite).
    pub fn default_dir() -> PathBuf {
        todo!()
    }
    pub fn name(&self) -> &str {
        todo!()
    }
    /// 8-byte model id carried by every frame, as 16 hex digits.
    pub fn model_id_hex(&self) -> String {
        todo!()
    }
    pub fn levels(&self) -> u8 {
        todo!()
    }
    /// The provider that actually runs g_a/g_s (Auto resolved), for logging.
    pub fn active_provider(&self) -> ExecutionProvider {
        todo!()
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

pub struct EncodedFrame {
    /// The whole frame (header + segments).
    pub bytes: Vec<u8>,
    /// `layer_sizes[n-1]` = size in bytes of the frame thinned to n layers (n = 1..=layers).
    pub layer_sizes: Vec<usize>,
    pub timing: Timing,
}

pub struct Encoder {/* private */}

impl Encoder {
    pub fn new(bundle: Arc<Bundle>) -> Self {
        todo!()
    }
    /// Encodes at `layers` (1..=L).
    pub fn encode(&mut self, image: ImageRef<'_>, layers: u8) -> Result<EncodedFrame, Error> {
        todo!()
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

pub struct Decoded {
    pub image: RgbImage,
    /// Layers actually used (min of carried and max_layers).
    pub layers: u8,
    pub timing: Timing,
}

pub struct Decoder {/* private */}

impl Decoder {
    pub fn new(bundle: Arc<Bundle>) -> Self {
        todo!()
    }
    /// Decodes using at most `max_layers` of the carried layers (0 = all).
    pub fn decode(&mut self, frame: &[u8], max_layers: u8, sampling: Sampling) -> Result<Decoded, Error> {
        todo!()
    }
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
pub fn peek_frame(data: &[u8]) -> Result<Option<FrameInfo>, Error> {
    todo!()
}

/// Drops trailing layers: the frame with its first `layers` layers, header rewritten, payload
/// bytes untouched. `layers >= carried` returns the frame unchanged.
pub fn thin(frame: &[u8], layers: u8) -> Result<Vec<u8>, Error> {
    todo!()
}
