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

use gstsic::codec::{
    Bundle, Decoder, Encoder, ImageRef, PixelFormat, RgbImage, RuntimeOptions, Sampling, Timing,
};

fn read_png(path: &Path) -> Result<RgbImage, String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let file = std::fs::File::open(path).map_err(|e| err(&e))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| err(&e))?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).map_err(|e| err(&e))?;
    let channels = info.color_type.samples();
    let data = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .flat_map(|px| match channels {
            1 | 2 => [px[0], px[0], px[0]],
            _ => [px[0], px[1], px[2]],
        })
        .collect();
    Ok(RgbImage {
        width: info.width,
        height: info.height,
        data,
    })
}

fn write_png(path: &Path, img: &RgbImage) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let file = std::fs::File::create(path).map_err(|e| err(&e))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), img.width, img.height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().map_err(|e| err(&e))?;
    w.write_image_data(&img.data).map_err(|e| err(&e))
}

fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    let mse = a
        .data
        .iter()
        .zip(&b.data)
        .map(|(&p, &q)| (p as f64 - q as f64).powi(2))
        .sum::<f64>()
        / a.data.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0 * 255.0 / mse).log10()
    }
}

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
