//! Speed benchmark per stage: pixel conversion, heavy networks (g_a / g_s), entropy-parameter
//! networks (h_s, slices) and entropy coding, for encode and decode at several sizes.
//!
//!   cargo run --release --example bench -- [--provider cpu|cuda|auto] [--device-id N]
//!       [--threads N] [--sizes 1280x720,1920x1080] [--frames N] [--layers N] [--model DIR]
//!       [--rdo-lambda X] [--tile-size PIXELS]
//!
//! The first frame of each size is a warm-up and is not counted.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use gstsic::codec::{
    Bundle, Decoder, Encoder, ExecutionProvider, ImageRef, PixelFormat, RuntimeOptions, Sampling,
    Timing,
};

struct Args {
    opts: RuntimeOptions,
    sizes: Vec<(u32, u32)>,
    frames: usize,
    layers: Option<u8>,
    model: PathBuf,
    rdo_lambda: f32,
    tile_size: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        opts: RuntimeOptions::default(),
        sizes: vec![(1280, 720), (1920, 1080)],
        frames: 5,
        layers: None,
        model: Bundle::default_dir(),
        rdo_lambda: gstsic::codec::DEFAULT_RDO_LAMBDA,
        tile_size: gstsic::codec::DEFAULT_TILE_SIZE,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--provider" => {
                a.opts.provider = match value()?.as_str() {
                    "cpu" => ExecutionProvider::Cpu,
                    "cuda" => ExecutionProvider::Cuda,
                    "auto" => ExecutionProvider::Auto,
                    p => return Err(format!("unknown provider {p}")),
                }
            }
            "--device-id" => a.opts.device_id = value()?.parse().map_err(|e| format!("{e}"))?,
            "--threads" => a.opts.threads = value()?.parse().map_err(|e| format!("{e}"))?,
            "--frames" => a.frames = value()?.parse().map_err(|e| format!("{e}"))?,
            "--layers" => a.layers = Some(value()?.parse().map_err(|e| format!("{e}"))?),
            "--model" => a.model = value()?.into(),
            "--rdo-lambda" => a.rdo_lambda = value()?.parse().map_err(|e| format!("{e}"))?,
            "--tile-size" => a.tile_size = value()?.parse().map_err(|e| format!("{e}"))?,
            "--sizes" => {
                a.sizes = value()?
                    .split(',')
                    .map(|s| {
                        let (w, h) = s.split_once('x').ok_or(format!("bad size {s}"))?;
                        Ok((
                            w.parse().map_err(|e| format!("{e}"))?,
                            h.parse().map_err(|e| format!("{e}"))?,
                        ))
                    })
                    .collect::<Result<_, String>>()?
            }
            f => return Err(format!("unknown argument {f}")),
        }
    }
    a.frames = a.frames.max(1);
    Ok(a)
}

/// A deterministic picture with smooth regions, edges and fine texture, so entropy coding sees
/// realistic work (a flat picture would make it look free).
fn test_picture(width: u32, height: u32) -> Vec<u8> {
    let mut data = Vec::with_capacity(width as usize * height as usize * 3);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    for y in 0..height {
        for x in 0..width {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let noise = (state % 24) as f32;
            let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
            let ring = (fx * 40.0).sin() * (fy * 25.0).cos() * 60.0;
            let block = if ((x / 97) + (y / 61)) % 2 == 0 {
                40.0
            } else {
                0.0
            };
            let r = 60.0 + 120.0 * fx + ring + noise;
            let g = 50.0 + 140.0 * fy + block + noise;
            let b = 200.0 - 120.0 * fx * fy - ring * 0.5 + noise;
            data.extend([r, g, b].map(|v| v.clamp(0.0, 255.0) as u8));
        }
    }
    data
}

fn add(acc: &mut Timing, t: &Timing) {
    acc.convert += t.convert;
    acc.transform += t.transform;
    acc.params += t.params;
    acc.entropy += t.entropy;
}

fn run() -> Result<(), String> {
    let args = parse_args()?;
    let bundle = Bundle::load(&args.model, &args.opts).map_err(|e| e.to_string())?;
    let layers = args.layers.unwrap_or(bundle.levels());
    println!(
        "model {} ({}), heavy networks on {} ({}), {} frames per size after one warm-up, {} layers, \
         rdo-lambda {}, tile size {}",
        bundle.name(),
        bundle.model_id_hex(),
        bundle.active_provider(),
        bundle.provider_note(),
        args.frames,
        layers,
        args.rdo_lambda,
        args.tile_size
    );
    println!(
        "{:<10} {:<6} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "size", "stage", "fps", "total", "convert", "network", "params", "entropy", "bpp"
    );
    let mut encoder = Encoder::new(bundle.clone());
    encoder
        .set_rdo_lambda(args.rdo_lambda)
        .map_err(|e| e.to_string())?;
    encoder
        .set_tile_size(args.tile_size)
        .map_err(|e| e.to_string())?;
    let mut decoder = Decoder::new(bundle.clone());
    decoder
        .set_tile_size(args.tile_size)
        .map_err(|e| e.to_string())?;
    for &(w, h) in &args.sizes {
        let pixels = test_picture(w, h);
        let image = ImageRef {
            width: w,
            height: h,
            stride: w as usize * 3,
            format: PixelFormat::Rgb,
            data: &pixels,
        };
        let (mut enc, mut dec) = (Timing::default(), Timing::default());
        let (mut enc_wall, mut dec_wall, mut bytes) = (0.0, 0.0, 0usize);
        for i in 0..=args.frames {
            let t = Instant::now();
            let frame = encoder.encode(image, layers).map_err(|e| e.to_string())?;
            let te = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let decoded = decoder
                .decode(&frame.bytes, 0, Sampling::Mean)
                .map_err(|e| e.to_string())?;
            let td = t.elapsed().as_secs_f64();
            if i > 0 {
                add(&mut enc, &frame.timing);
                add(&mut dec, &decoded.timing);
                enc_wall += te;
                dec_wall += td;
                bytes += frame.bytes.len();
            }
        }
        let n = args.frames as f64;
        let bpp = bytes as f64 * 8.0 / (n * f64::from(w) * f64::from(h));
        for (stage, t, wall) in [("encode", enc, enc_wall), ("decode", dec, dec_wall)] {
            println!(
                "{:<10} {:<6} {:>8.2} {:>6.1}ms {:>7.1}ms {:>7.1}ms {:>7.1}ms {:>7.1}ms {:>8.4}",
                format!("{w}x{h}"),
                stage,
                n / wall,
                wall / n * 1e3,
                t.convert / n * 1e3,
                t.transform / n * 1e3,
                t.params / n * 1e3,
                t.entropy / n * 1e3,
                bpp
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}
