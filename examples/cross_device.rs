//! Cross-device check: frames encoded with the heavy networks on one execution provider decode
//! on another to exactly the latent the encoder transmitted, and to the same picture as a
//! same-device decode gives from that latent.
//!
//!   cargo run --release --features cuda --example cross_device -- [--model DIR] [image.png]
//!
//! Without a GPU it compares two CPU configurations (1 thread vs default threads) instead, which
//! exercises the same property: only the entropy-parameter path must agree, and it always runs
//! on the CPU provider single-threaded.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[path = "support/mod.rs"]
mod support;

use gstsic::codec::{Bundle, Decoder, Encoder, ExecutionProvider, RuntimeOptions, Sampling};

fn run() -> Result<bool, String> {
    let mut model = Bundle::default_dir();
    let mut image_path = String::from("tests/data/ladybird-256x192.png");
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--model" => model = PathBuf::from(it.next().ok_or("--model needs a value")?),
            _ => image_path = a,
        }
    }
    let photo = support::read_png(std::path::Path::new(&image_path))?;
    let image = photo.as_image_ref();
    let load = |provider, threads| {
        let opts = RuntimeOptions {
            provider,
            threads,
            ..Default::default()
        };
        Bundle::load(&model, &opts).map_err(|e| e.to_string())
    };
    let gpu = cfg!(feature = "cuda");
    let (a, b): (Arc<Bundle>, Arc<Bundle>) = if gpu {
        (
            load(ExecutionProvider::Cuda, 0)?,
            load(ExecutionProvider::Cpu, 0)?,
        )
    } else {
        (
            load(ExecutionProvider::Cpu, 1)?,
            load(ExecutionProvider::Cpu, 0)?,
        )
    };
    let name = |x: &Bundle, threads: &str| format!("{}{}", x.active_provider(), threads);
    let (na, nb) = if gpu {
        (name(&a, ""), name(&b, ""))
    } else {
        (name(&a, "/1 thread"), name(&b, "/default threads"))
    };
    let mut all_ok = true;
    for (enc_b, enc_n, dec_b, dec_n) in [(&a, &na, &b, &nb), (&b, &nb, &a, &na)] {
        for layers in 1..=enc_b.levels() {
            let (frame, sent) = Encoder::new(enc_b.clone())
                .encode_with_latent(image, layers)
                .map_err(|e| e.to_string())?;
            let (same, same_latent) = Decoder::new(enc_b.clone())
                .decode_with_latent(&frame.bytes, 0, Sampling::Mean)
                .map_err(|e| e.to_string())?;
            let (cross, cross_latent) = Decoder::new(dec_b.clone())
                .decode_with_latent(&frame.bytes, 0, Sampling::Mean)
                .map_err(|e| e.to_string())?;
            let n = sent.len();
            let exact_sent = cross_latent[..n] == sent[..];
            let exact_same = cross_latent == same_latent;
            let max_px = same
                .image
                .data
                .iter()
                .zip(&cross.image.data)
                .map(|(&p, &q)| p.abs_diff(q))
                .max()
                .unwrap_or(0);
            all_ok &= exact_sent && exact_same;
            println!(
                "encode on {enc_n:<16} decode on {dec_n:<16} layers {layers}: {} bytes, \
                 transmitted latent exact: {exact_sent}, full latent equals same-device decode: \
                 {exact_same}, max pixel difference vs same-device decode: {max_px}",
                frame.bytes.len()
            );
        }
    }
    println!(
        "cross-device result: {}",
        if all_ok { "IDENTICAL" } else { "MISMATCH" }
    );
    Ok(all_ok)
}

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("cross_device: {e}");
            ExitCode::FAILURE
        }
    }
}
