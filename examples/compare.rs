//! Prints one row of the demo's table: real bytes and bits per pixel of a SIC file, and the PSNR
//! between an original PNG and its decoded PNG.
//!
//!   compare ORIGINAL.png DECODED.png FRAME.sic LABEL

use std::process::ExitCode;

fn read_rgb(path: &str) -> Result<(u32, u32, Vec<u8>), String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
    let mut decoder = png::Decoder::new(std::io::BufReader::new(file));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder.read_info().map_err(|e| format!("{path}: {e}"))?;
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("{path}: {e}"))?;
    let channels = info.color_type.samples();
    let rgb = buf[..info.buffer_size()]
        .chunks_exact(channels)
        .flat_map(|px| match channels {
            1 | 2 => [px[0], px[0], px[0]],
            _ => [px[0], px[1], px[2]],
        })
        .collect();
    Ok((info.width, info.height, rgb))
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        return Err("usage: compare ORIGINAL.png DECODED.png FRAME.sic LABEL".into());
    }
    let (w, h, a) = read_rgb(&args[1])?;
    let (w2, h2, b) = read_rgb(&args[2])?;
    if (w, h) != (w2, h2) {
        return Err(format!("size differs: {w}x{h} vs {w2}x{h2}"));
    }
    let bytes = std::fs::metadata(&args[3])
        .map_err(|e| format!("{}: {e}", args[3]))?
        .len();
    let mse = a
        .iter()
        .zip(&b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    let psnr = 10.0 * (255.0f64 * 255.0 / mse.max(1e-10)).log10();
    let bpp = bytes as f64 * 8.0 / (f64::from(w) * f64::from(h));
    println!("{:<6} {:>10} {:>8.4} {:>9.2}", args[4], bytes, bpp, psnr);
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("compare: {e}");
            ExitCode::FAILURE
        }
    }
}
