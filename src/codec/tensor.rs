//! Packed 8-bit pixels <-> padded NCHW f32 tensors (docs/model.md rules 1 and 6).

use super::tiling::window;
use super::{Error, ImageRef, PixelFormat, RgbImage, check_dimensions};

/// A planar RGB tensor `[1, 3, height, width]` (the padded size).
pub(crate) struct Planar {
    pub data: Vec<f32>,
    pub height: usize,
    pub width: usize,
}

/// Rounds `n` up to a multiple of `m` (m > 0).
pub(crate) fn pad_to(n: usize, m: usize) -> usize {
    n.div_ceil(m) * m
}

/// Checks that `len` bytes hold `height` rows of `stride` bytes of `width` pixels of `format`.
fn check_layout(
    what: &str,
    width: u32,
    height: u32,
    format: PixelFormat,
    stride: usize,
    len: usize,
) -> Result<(), Error> {
    check_dimensions(width, height).map_err(Error::InvalidInput)?;
    let row = width as usize * format.bytes_per_pixel();
    if stride < row {
        return Err(Error::InvalidInput(format!(
            "{what}: stride {stride} is smaller than a row of {width} {format:?} pixels ({row} bytes)"
        )));
    }
    let need = stride
        .checked_mul(height as usize - 1)
        .and_then(|n| n.checked_add(row))
        .ok_or_else(|| Error::InvalidInput(format!("{what}: stride {stride} is too large")))?;
    if len < need {
        return Err(Error::InvalidInput(format!(
            "{what}: {len} bytes, but {width}x{height} {format:?} with stride {stride} needs {need}"
        )));
    }
    Ok(())
}

/// Converts a picture to `[1, 3, H, W]` in [0, 1], padded on the right and bottom to multiples
/// of `pad_multiple` by repeating the last column / row.
pub(crate) fn image_to_planar(img: &ImageRef<'_>, pad_multiple: usize) -> Result<Planar, Error> {
    check_layout(
        "input picture",
        img.width,
        img.height,
        img.format,
        img.stride,
        img.data.len(),
    )?;
    let (w, h) = (img.width as usize, img.height as usize);
    let (wp, hp) = (pad_to(w, pad_multiple), pad_to(h, pad_multiple));
    let plane = wp * hp;
    let mut data = vec![0f32; 3 * plane];
    let bpp = img.format.bytes_per_pixel();
    let offs = img.format.rgb_offsets();
    let mut lut = [0f32; 256];
    for (i, v) in lut.iter_mut().enumerate() {
        *v = i as f32 / 255.0;
    }
    for y in 0..h {
        let row = &img.data[y * img.stride..y * img.stride + w * bpp];
        for (c, &off) in offs.iter().enumerate() {
            let dst = &mut data[c * plane + y * wp..c * plane + (y + 1) * wp];
            for (x, px) in row.chunks_exact(bpp).enumerate() {
                dst[x] = lut[px[off] as usize];
            }
            let last = dst[w - 1];
            dst[w..].fill(last);
        }
    }
    for c in 0..3 {
        let base = c * plane;
        let (filled, rest) = data[base..base + plane].split_at_mut(h * wp);
        let last = &filled[(h - 1) * wp..];
        for row in rest.chunks_exact_mut(wp) {
            row.copy_from_slice(last);
        }
    }
    Ok(Planar {
        data,
        height: hp,
        width: wp,
    })
}

/// Crops a `[1, 3, hp, wp]` tensor to `width` × `height`, clamps to [0, 1] and rounds to bytes.
pub(crate) fn planar_to_rgb(x: &[f32], hp: usize, wp: usize, width: u32, height: u32) -> RgbImage {
    let (w, h) = (width as usize, height as usize);
    let plane = hp * wp;
    let mut data = vec![0u8; w * h * 3];
    for c in 0..3 {
        for y in 0..h {
            let src = &x[c * plane + y * wp..c * plane + y * wp + w];
            let dst = &mut data[y * w * 3..(y + 1) * w * 3];
            for (px, &v) in dst.chunks_exact_mut(3).zip(src) {
                // NaN stays NaN through clamp and becomes 0 in the cast.
                px[c] = (v.clamp(0.0, 1.0) * 255.0).round_ties_even() as u8;
            }
        }
    }
    RgbImage {
        width,
        height,
        data,
    }
}

/// The top-left `h` × `w` of every `hp` × `wp` plane of a planar tensor (`h <= hp`, `w <= wp`);
/// `x` itself when there is nothing to cut.
pub(crate) fn crop_planes(x: Vec<f32>, hp: usize, wp: usize, h: usize, w: usize) -> Vec<f32> {
    if (h, w) == (hp, wp) {
        return x;
    }
    window(&x, hp, wp, &(0..h), &(0..w))
}

/// See [`RgbImage::write_to`].
pub(crate) fn write_rgb(
    img: &RgbImage,
    format: PixelFormat,
    stride: usize,
    dst: &mut [u8],
) -> Result<(), Error> {
    let (w, h) = (img.width as usize, img.height as usize);
    if img.data.len() != w * h * 3 {
        return Err(Error::InvalidInput(format!(
            "RGB picture {w}x{h} holds {} bytes, want {}",
            img.data.len(),
            w * h * 3
        )));
    }
    check_layout(
        "output buffer",
        img.width,
        img.height,
        format,
        stride,
        dst.len(),
    )?;
    let bpp = format.bytes_per_pixel();
    let offs = format.rgb_offsets();
    let filler = format.filler_offset();
    for y in 0..h {
        let src = &img.data[y * w * 3..(y + 1) * w * 3];
        let row = &mut dst[y * stride..y * stride + w * bpp];
        for (d, s) in row.chunks_exact_mut(bpp).zip(src.chunks_exact(3)) {
            d[offs[0]] = s[0];
            d[offs[1]] = s[1];
            d[offs[2]] = s[2];
            if let Some(f) = filler {
                d[f] = 255;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_keeps_the_top_left_of_every_plane() {
        // 2 planes of 3 x 4, values = plane * 100 + row * 10 + column
        let x: Vec<f32> = (0..2)
            .flat_map(|c| {
                (0..3).flat_map(move |r| (0..4).map(move |q| (c * 100 + r * 10 + q) as f32))
            })
            .collect();
        assert_eq!(
            crop_planes(x.clone(), 3, 4, 2, 3),
            [
                0., 1., 2., 10., 11., 12., 100., 101., 102., 110., 111., 112.
            ]
        );
        assert_eq!(crop_planes(x.clone(), 3, 4, 3, 4), x);
    }

    #[test]
    fn padding_replicates_edges() {
        // 3x2 RGB picture, stride 10 (one padding byte per row).
        let mut data = vec![0u8; 20];
        for y in 0..2 {
            for x in 0..3 {
                data[y * 10 + x * 3] = (10 * y + x) as u8; // R
                data[y * 10 + x * 3 + 1] = 100; // G
                data[y * 10 + x * 3 + 2] = 200; // B
            }
        }
        let img = ImageRef {
            width: 3,
            height: 2,
            stride: 10,
            format: PixelFormat::Rgb,
            data: &data,
        };
        let p = image_to_planar(&img, 4).unwrap();
        assert_eq!((p.height, p.width), (4, 4));
        let r = |y: usize, x: usize| (p.data[y * 4 + x] * 255.0).round() as u8;
        assert_eq!(r(0, 2), 2);
        assert_eq!(r(0, 3), 2); // replicated last column
        assert_eq!(r(1, 1), 11);
        assert_eq!(r(3, 1), 11); // replicated last row
        assert_eq!(r(3, 3), 12);
        assert_eq!(p.data[16 + 5], 100.0 / 255.0);
        let back = planar_to_rgb(&p.data, 4, 4, 3, 2);
        assert_eq!(back.data[3..6], [1, 100, 200]);
        assert_eq!(back.data[15..18], [12, 100, 200]);
    }

    #[test]
    fn clamps_and_handles_nan() {
        let x = [-0.5f32, 2.0, f32::NAN, 0.5];
        let img = planar_to_rgb(&[x, x, x].concat(), 1, 4, 4, 1);
        assert_eq!(
            &img.data[..12],
            &[0, 0, 0, 255, 255, 255, 0, 0, 0, 128, 128, 128]
        );
    }
}
