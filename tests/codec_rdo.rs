//! Rate-distortion optimised quantisation (`Encoder::set_rdo_lambda`): an encoder-only choice.
//! Any decoder reads the frames exactly, each level costs fewer bytes, and the rate term's range
//! is enforced.

mod codec_util;

use gstsic::codec::{Decoder, Encoder, MAX_RDO_LAMBDA, Sampling};

use codec_util::*;

#[test]
fn rdo_frames_decode_exactly_and_are_smaller() {
    let b = bundle();
    let photo = test_photo();
    let levels = b.levels();
    let mut plain = Encoder::new(b.clone());
    let mut rdo = Encoder::new(b.clone());
    plain.set_rdo_lambda(0.0).unwrap();
    rdo.set_rdo_lambda(0.1).unwrap();
    let mut dec = Decoder::new(b.clone());

    let (f0, _) = plain.encode_with_latent(as_ref(&photo), levels).unwrap();
    let (f1, lat) = rdo.encode_with_latent(as_ref(&photo), levels).unwrap();
    // The decoder rebuilds exactly the latent the RDO encoder chose.
    let (d, y_hat) = dec
        .decode_with_latent(&f1.bytes, 0, Sampling::Mean)
        .unwrap();
    assert_eq!(d.layers, levels);
    assert_eq!(bits(&y_hat), bits(&lat));
    if model_is_trained() {
        // Every truncation point is smaller, and the picture stays close to plain rounding's.
        for (n, (a, r)) in f0.layer_sizes.iter().zip(&f1.layer_sizes).enumerate() {
            assert!(r < a, "level {}: {r} B with rdo, {a} B without", n + 1);
        }
        let (p0, _) = dec
            .decode_with_latent(&f0.bytes, 0, Sampling::Mean)
            .unwrap();
        let (q0, q1) = (psnr(&photo, &p0.image), psnr(&photo, &d.image));
        assert!(
            q1 > q0 - 1.5 && q1 < q0,
            "PSNR {q0:.2} plain, {q1:.2} with rdo"
        );
    }
}

#[test]
fn rdo_lambda_range_is_enforced() {
    let mut enc = Encoder::new(bundle());
    for bad in [-0.01, f32::NAN, f32::INFINITY, MAX_RDO_LAMBDA + 0.5] {
        assert!(enc.set_rdo_lambda(bad).is_err(), "{bad} accepted");
    }
    enc.set_rdo_lambda(MAX_RDO_LAMBDA).unwrap();
    assert_eq!(enc.rdo_lambda(), MAX_RDO_LAMBDA);
    // The largest rate term still gives a valid, decodable frame.
    let img = synthetic(100, 60);
    let f = enc.encode(as_ref(&img), 2).unwrap();
    let mut dec = Decoder::new(bundle());
    let (d, _) = dec.decode_with_latent(&f.bytes, 0, Sampling::Mean).unwrap();
    assert_eq!((d.image.width, d.image.height), (100, 60));
}
