//! Helpers shared by the `codec_*` tests (each test binary includes this module).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use gstsic::codec::{Bundle, ImageRef, PixelFormat, RgbImage, RuntimeOptions};

pub fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/sic-lite")
}

/// The bundle, loaded once per test binary with default options.
pub fn bundle() -> Arc<Bundle> {
    static B: OnceLock<Arc<Bundle>> = OnceLock::new();
    B.get_or_init(|| {
        Bundle::load(&model_dir(), &RuntimeOptions::default())
            .unwrap_or_else(|e| panic!("cannot load {}: {e}", model_dir().display()))
    })
    .clone()
}

/// A scratch copy of the bundle (graph files symlinked, model.json copied), minus `omit`.
pub fn scratch_bundle(name: &str, omit: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sic-bundle-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(model_dir()).unwrap() {
        let entry = entry.unwrap();
        let file = entry.file_name().to_string_lossy().to_string();
        if file == omit || !entry.file_type().unwrap().is_file() {
            continue;
        }
        if file == "model.json" {
            std::fs::copy(entry.path(), dir.join(&file)).unwrap();
        } else {
            std::os::unix::fs::symlink(entry.path(), dir.join(&file)).unwrap();
        }
    }
    dir
}

/// Rewrites `dir/model.json` through `edit`.
pub fn edit_json(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("model.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
}

/// True when model.json says the model was trained (steps > 0).
pub fn model_is_trained() -> bool {
    let text = std::fs::read_to_string(model_dir().join("model.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["training"]["steps"].as_u64().unwrap_or(0) > 0
}

/// The committed test photo (256x192 RGB).
pub fn test_photo() -> RgbImage {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/ladybird-256x192.png");
    let decoder = png::Decoder::new(std::fs::File::open(&path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Rgb);
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    buf.truncate(info.buffer_size());
    RgbImage {
        width: info.width,
        height: info.height,
        data: buf,
    }
}

/// A deterministic synthetic picture: smooth gradients plus some texture.
pub fn synthetic(width: u32, height: u32) -> RgbImage {
    let mut data = Vec::with_capacity((width * height * 3) as usize);
    for y in 0..height {
        for x in 0..width {
            let t = ((x * 7 + y * 13) % 23) as u8;
            data.push((x * 255 / width.max(1)) as u8 ^ t);
            data.push((y * 255 / height.max(1)) as u8);
            data.push(((x + y) * 3 % 256) as u8);
        }
    }
    RgbImage {
        width,
        height,
        data,
    }
}

pub fn as_ref(img: &RgbImage) -> ImageRef<'_> {
    ImageRef {
        width: img.width,
        height: img.height,
        stride: img.width as usize * 3,
        format: PixelFormat::Rgb,
        data: &img.data,
    }
}

pub fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    assert_eq!((a.width, a.height), (b.width, b.height));
    gstsic::codec::psnr(&a.data, &b.data)
}

/// Bit patterns, for exact comparisons of f32 data.
pub fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}
