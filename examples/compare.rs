//! Prints one row of the demo's table: real bytes and bits per pixel of a SIC file, and the PSNR
//! between an original PNG and its decoded PNG.
//!
//!   compare ORIGINAL.png DECODED.png FRAME.sic LABEL

use std::path::Path;
use std::process::ExitCode;

#[path = "support/mod.rs"]
mod support;
use support::{psnr, read_png};

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 5 {
        return Err("usage: compare ORIGINAL.png DECODED.png FRAME.sic LABEL".into());
    }
    let a = read_png(Path::new(&args[1]))?;
    let b = read_png(Path::new(&args[2]))?;
    let (w, h) = (a.width, a.height);
    if (w, h) != (b.width, b.height) {
        return Err(format!("size differs: {w}x{h} vs {}x{}", b.width, b.height));
    }
    let bytes = std::fs::metadata(&args[3])
        .map_err(|e| format!("{}: {e}", args[3]))?
        .len();
    let psnr = psnr(&a, &b);
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
