//! Cross-configuration exactness: the decoder rebuilds the transmitted latent bit for bit even
//! when the heavy networks ran differently on the encoding side (other thread count, slightly
//! different g_a output). Only the entropy-parameter networks must agree, and they always run
//! single-threaded on the CPU provider.

mod codec_util;

use gstsic::codec::{Bundle, Decoder, Encoder, RuntimeOptions, Sampling};

use codec_util::*;

fn load(threads: usize) -> std::sync::Arc<Bundle> {
    let opts = RuntimeOptions {
        threads,
        ..Default::default()
    };
    Bundle::load(&model_dir(), &opts).unwrap()
}

#[test]
fn encode_and_decode_with_different_thread_counts() {
    let one = load(1);
    let two = load(2);
    let photo = test_photo();
    let levels = one.levels();
    for (enc_b, dec_b) in [(&one, &two), (&two, &one)] {
        let mut enc = Encoder::new(enc_b.clone());
        let mut dec = Decoder::new(dec_b.clone());
        for k in [1, levels / 2, levels] {
            let (f, lat) = enc.encode_with_latent(as_ref(&photo), k).unwrap();
            let (d, y_hat) = dec
                .decode_with_latent(&f.bytes, 0, Sampling::Uniform { seed: 3 })
                .unwrap();
            assert_eq!(d.layers, k);
            assert_eq!(bits(&y_hat[..lat.len()]), bits(&lat), "level {k}");
        }
    }
}

#[test]
fn perturbed_analysis_still_decodes_exactly() {
    let b = bundle();
    let mut enc = Encoder::new(b.clone());
    let mut dec = Decoder::new(b.clone());
    let img = synthetic(130, 70);
    let levels = b.levels();
    let (clean, _) = enc.encode_with_latent(as_ref(&img), levels).unwrap();
    for (name, amount) in [
        ("tiny", 1e-4f32),
        ("fp16-like", 2e-3),
        ("medium", 0.05),
        ("large", 0.3),
    ] {
        let mut state = 99u64;
        let mut noise = |y: &mut [f32], z: &mut [f32]| {
            for v in y.iter_mut().chain(z.iter_mut()) {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
                *v += amount * u * (1.0 + v.abs());
            }
        };
        let (f, lat) = enc
            .encode_perturbed(as_ref(&img), levels, &mut noise)
            .unwrap();
        let (_, y_hat) = dec.decode_with_latent(&f.bytes, 0, Sampling::Mean).unwrap();
        assert_eq!(bits(&y_hat[..lat.len()]), bits(&lat), "{name}");
        eprintln!(
            "{name}: frame differs from the clean one: {}",
            f.bytes != clean.bytes
        );
    }
}
