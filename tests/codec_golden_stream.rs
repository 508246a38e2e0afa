//! Golden stream: a committed SIC frame (the test photo encoded at 3 layers with the shipped
//! model) must keep decoding to the committed reference picture. It guards the bitstream, the
//! entropy coder and the decoder against silent changes.
//!
//! After a deliberate change of the model or format, regenerate both files with
//! `SIC_BLESS=1 cargo test --test codec_golden_stream` and commit them.

mod codec_util;

use std::path::{Path, PathBuf};

use gstsic::codec::{Decoder, Encoder, RgbImage, Sampling, peek_frame};

const LAYERS: u8 = 3;

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/golden")
        .join(name)
}

fn read_png(path: &Path) -> RgbImage {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    RgbImage {
        width: info.width,
        height: info.height,
        data: buf,
    }
}

fn write_png(path: &Path, img: &RgbImage) {
    let file = std::fs::File::create(path).unwrap();
    let mut enc = png::Encoder::new(file, img.width, img.height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()
        .unwrap()
        .write_image_data(&img.data)
        .unwrap();
}

#[test]
fn committed_stream_decodes_to_committed_picture() {
    let bundle = codec_util::bundle();
    let (stream_path, picture_path) = (golden("ladybird-l3.sic"), golden("ladybird-l3-mean.png"));
    if std::env::var_os("SIC_BLESS").is_some() {
        let photo = codec_util::test_photo();
        let frame = Encoder::new(bundle.clone())
            .encode(codec_util::as_ref(&photo), LAYERS)
            .unwrap();
        let decoded = Decoder::new(bundle.clone())
            .decode(&frame.bytes, 0, Sampling::Mean)
            .unwrap();
        std::fs::create_dir_all(golden("")).unwrap();
        std::fs::write(&stream_path, &frame.bytes).unwrap();
        write_png(&picture_path, &decoded.image);
    }
    let stream = std::fs::read(&stream_path).unwrap();
    let info = peek_frame(&stream).unwrap().expect("a whole frame");
    assert_eq!((info.width, info.height, info.layers), (256, 192, LAYERS));
    assert_eq!(info.frame_len, stream.len());
    assert_eq!(
        info.model_id,
        bundle.model_id(),
        "the golden stream was made by another model: regenerate it (SIC_BLESS=1)"
    );

    let decoded = Decoder::new(bundle)
        .decode(&stream, 0, Sampling::Mean)
        .unwrap();
    let reference = read_png(&picture_path);
    assert_eq!((decoded.image.width, decoded.image.height), (256, 192));
    assert_eq!(decoded.layers, LAYERS);
    // The entropy decode is exact; the synthesis runs in floating point, so allow one step of
    // rounding where another CPU's kernels land on the other side of a .5.
    let max_diff = decoded
        .image
        .data
        .iter()
        .zip(&reference.data)
        .map(|(&a, &b)| a.abs_diff(b))
        .max()
        .unwrap();
    assert!(max_diff <= 1, "decoded picture differs by up to {max_diff}");
}
