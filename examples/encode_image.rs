//! Encodes a PNG at every level of the model and reports, per level: the real frame size, bits
//! per pixel (every byte of the frame over the original width × height), PSNR (RGB) of the
//! decoded picture, and where the time went.
//!
//!   cargo run --release --example encode_image -- IMAGE.png [MODEL_DIR] [OUT_DIR]
//!
//! MODEL_DIR defaults to the bundle the plugin finds (SIC_MODEL_DIR, ..., models/sic-lite).
//! With OUT_DIR, each level's frame (`level_N.sic`) and decoded picture (`level_N.png`) are
//! written there.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[path = "support/mod.rs"]
mod support;
use support::{psnr, read_png, write_png};

use gstsic::codec::{
    Bundle, Decoder, Encoder, ImageRef, PixelFormat, RuntimeOptions, Sampling, Timing,
};

fn ms(t: &Timing) -> String {
    format!(
        "{:6.1} {:6.1} {:6.1} {:6.1}",
        t.convert * 1e3,
        t.transform * 1e3,
        t.params * 1e3,
        t.entropy * 1e3
    )
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() || args.len() > 3 || args[0].starts_with('-') {
        return Err("usage: encode_image IMAGE.png [MODEL_DIR] [OUT_DIR]".into());
    }
    let image = read_png(Path::new(&args[0]))?;
    let model_dir = args
        .get(1)
        .map(PathBuf::from)
        .unwrap_or_else(Bundle::default_dir);
    let out_dir = args.get(2).map(PathBuf::from);
    if let Some(d) = &out_dir {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }

    let bundle = Bundle::load(&model_dir, &RuntimeOptions::default()).map_err(|e| e.to_string())?;
    println!(
        "{}: {}x{}; model {} ({}), {} levels; provider {:?} ({})",
        args[0],
        image.width,
        image.height,
        bundle.name(),
        bundle.model_id_hex(),
        bundle.levels(),
        bundle.active_provider(),
        bundle.provider_note()
    );
    let mut enc = Encoder::new(bundle.clone());
    let mut dec = Decoder::new(bundle.clone());
    let src = ImageRef {
        width: image.width,
        height: image.height,
        stride: image.width as usize * 3,
        format: PixelFormat::Rgb,
        data: &image.data,
    };
    // Warm-up (first runs of ONNX Runtime sessions allocate and plan).
    let warm = enc.encode(src, 1).map_err(|e| e.to_string())?;
    dec.decode(&warm.bytes, 0, Sampling::Mean)
        .map_err(|e| e.to_string())?;

    let pixels = image.width as f64 * image.height as f64;
    let sampling = bundle.default_sampling(0);
    println!(
        "times in ms, each as convert / networks (g_a or g_s) / params (h_s, slices) / entropy; \
         decoded with {sampling:?}"
    );
    println!(
        "{:>5} {:>8} {:>7} {:>9} {:>9}   {:<27}   {:<27}",
        "level", "bytes", "bpp", "PSNR", "PSNR mean", "encode", "decode"
    );
    for level in 1..=bundle.levels() {
        let f = enc.encode(src, level).map_err(|e| e.to_string())?;
        let d = dec
            .decode(&f.bytes, 0, sampling)
            .map_err(|e| e.to_string())?;
        let m = dec
            .decode(&f.bytes, 0, Sampling::Mean)
            .map_err(|e| e.to_string())?;
        let bpp = f.bytes.len() as f64 * 8.0 / pixels;
        println!(
            "{level:>5} {:>8} {bpp:>7.4} {:>7.2}dB {:>7.2}dB   {}   {}",
            f.bytes.len(),
            psnr(&image, &d.image),
            psnr(&image, &m.image),
            ms(&f.timing),
            ms(&d.timing)
        );
        if let Some(dir) = &out_dir {
            let sic = dir.join(format!("level_{level}.sic"));
            std::fs::write(&sic, &f.bytes).map_err(|e| format!("{}: {e}", sic.display()))?;
            write_png(&dir.join(format!("level_{level}.png")), &d.image)?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("encode_image: {e}");
            ExitCode::FAILURE
        }
    }
}
