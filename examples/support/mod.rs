//! Helpers shared by the examples: PNG in and out as `RgbImage`, and PSNR.
//! (Included with `#[path]`; not an example of its own.)
#![allow(dead_code)]

use std::path::Path;

use gstsic::codec::RgbImage;

pub fn read_png(path: &Path) -> Result<RgbImage, String> {
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

pub fn write_png(path: &Path, img: &RgbImage) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let file = std::fs::File::create(path).map_err(|e| err(&e))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), img.width, img.height);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().map_err(|e| err(&e))?;
    w.write_image_data(&img.data).map_err(|e| err(&e))
}

pub fn psnr(a: &RgbImage, b: &RgbImage) -> f64 {
    gstsic::codec::psnr(&a.data, &b.data)
}
