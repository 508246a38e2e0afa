//! Tiled networks (`set_tile_size`): a picture larger than the tile size runs g_a and g_s tile
//! by tile with the margins the bundle states, and gives the same frame and the same picture as
//! a whole-picture run. Also: bundles without margins never tile, and bad sizes are refused.

mod codec_util;

use gstsic::codec::{Bundle, Decoder, Encoder, RuntimeOptions, Sampling};

use codec_util::*;

/// Small tiles on a picture whose sides are not multiples of 64: interior tiles with margins on
/// both sides, short last tiles, and z positions only partly covered by the picture. (A side
/// is cut only where it is longer than a tile and its two margins: 128 + 2 × 192 pixels for the
/// analysis.)
#[test]
fn tiles_give_the_same_frame_and_picture() {
    let b = bundle();
    let img = synthetic(656, 528);
    let layers = b.levels();
    let mut whole = Encoder::new(b.clone());
    whole.set_tile_size(0).unwrap();
    let mut tiled = Encoder::new(b.clone());
    tiled.set_tile_size(128).unwrap();
    let (f0, y0) = whole.encode_with_latent(as_ref(&img), layers).unwrap();
    let (f1, y1) = tiled.encode_with_latent(as_ref(&img), layers).unwrap();
    assert_eq!(bits(&y0), bits(&y1), "latent");
    assert!(f0.bytes == f1.bytes, "frames differ");

    let mut whole = Decoder::new(b.clone());
    whole.set_tile_size(0).unwrap();
    let mut tiled = Decoder::new(b.clone());
    tiled.set_tile_size(64).unwrap();
    for layers in [1, 8] {
        let d0 = whole.decode(&f0.bytes, layers, Sampling::Mean).unwrap();
        let d1 = tiled.decode(&f0.bytes, layers, Sampling::Mean).unwrap();
        assert!(
            d0.image.data == d1.image.data,
            "{layers} layers: pictures differ"
        );
    }
}

/// Without the margins a tile's edge would show: running the same tiles with a margin too
/// small (a bundle that understates it) changes the result, so the test above can fail.
#[test]
fn understated_margins_change_the_result() {
    let dir = scratch_bundle("understated", "");
    edit_json(&dir, |v| {
        v["tiling"]["analysis_halo"] = 64.into();
        v["tiling"]["synthesis_halo"] = 1.into();
    });
    let small = Bundle::load(&dir, &RuntimeOptions::default()).unwrap();

    let img = synthetic(656, 528);
    let mut right = Encoder::new(bundle());
    right.set_tile_size(128).unwrap();
    let mut wrong = Encoder::new(small.clone());
    wrong.set_tile_size(128).unwrap();
    let (f, y) = right.encode_with_latent(as_ref(&img), 8).unwrap();
    let (_, y_wrong) = wrong.encode_with_latent(as_ref(&img), 8).unwrap();
    assert_ne!(bits(&y), bits(&y_wrong));

    let mut right = Decoder::new(bundle());
    right.set_tile_size(64).unwrap();
    let mut wrong = Decoder::new(small);
    wrong.set_tile_size(64).unwrap();
    let a = right.decode(&f.bytes, 8, Sampling::Mean).unwrap();
    let b = wrong.decode(&f.bytes, 8, Sampling::Mean).unwrap();
    assert!(a.image.data != b.image.data);
    let _ = std::fs::remove_dir_all(dir);
}

/// A bundle that states no margins (exported before tiling) runs whole pictures whatever the
/// tile size, and still codes them.
#[test]
fn bundle_without_margins_runs_whole_pictures() {
    let dir = scratch_bundle("no-tiling", "");
    edit_json(&dir, |v| {
        v.as_object_mut().unwrap().remove("tiling");
    });
    let old = Bundle::load(&dir, &RuntimeOptions::default()).unwrap();

    let img = synthetic(200, 136);
    let mut reference = Encoder::new(bundle());
    reference.set_tile_size(0).unwrap();
    let mut enc = Encoder::new(old.clone());
    enc.set_tile_size(64).unwrap();
    let f = enc.encode(as_ref(&img), 8).unwrap();
    assert!(f.bytes == reference.encode(as_ref(&img), 8).unwrap().bytes);
    let mut dec = Decoder::new(old);
    dec.set_tile_size(64).unwrap();
    assert_eq!(dec.decode(&f.bytes, 0, Sampling::Mean).unwrap().layers, 8);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn tile_size_must_be_a_multiple_of_64() {
    let mut enc = Encoder::new(bundle());
    let mut dec = Decoder::new(bundle());
    for bad in [1, 63, 100, 16448, u32::MAX] {
        let e = enc.set_tile_size(bad).unwrap_err().to_string();
        assert!(e.contains("multiple of 64"), "{bad}: {e}");
        assert!(dec.set_tile_size(bad).is_err(), "{bad}");
    }
    for good in [0, 64, 2048, 16384] {
        enc.set_tile_size(good).unwrap();
        dec.set_tile_size(good).unwrap();
    }
}
