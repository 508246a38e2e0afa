//! Pixel formats: every `PixelFormat` on output (`RgbImage::write_to`) and on input (encoding
//! the same picture in any layout and stride gives the same frame).

mod codec_util;

use gstsic::codec::{Encoder, Error, ImageRef, PixelFormat, RgbImage};

use codec_util::*;

fn written(img: &RgbImage, format: PixelFormat, pad: usize) -> (Vec<u8>, usize) {
    let stride = img.width as usize * format.bytes_per_pixel() + pad;
    let mut buf = vec![0xAAu8; stride * img.height as usize];
    img.write_to(format, stride, &mut buf).unwrap();
    (buf, stride)
}

#[test]
fn write_to_every_format() {
    let img = synthetic(13, 7);
    for format in PixelFormat::ALL {
        for pad in [0usize, 3, 16] {
            let (buf, stride) = written(&img, format, pad);
            let bpp = format.bytes_per_pixel();
            let [r, g, b] = format.rgb_offsets();
            for y in 0..7usize {
                for x in 0..13usize {
                    let px = &buf[y * stride + x * bpp..][..bpp];
                    let src = &img.data[(y * 13 + x) * 3..][..3];
                    assert_eq!(
                        [px[r], px[g], px[b]],
                        [src[0], src[1], src[2]],
                        "{format:?}"
                    );
                    if let Some(f) = format.filler_offset() {
                        assert_eq!(px[f], 255, "{format:?} alpha/padding byte");
                    }
                }
                // Row padding is left alone.
                assert!(
                    buf[y * stride + 13 * bpp..(y + 1) * stride]
                        .iter()
                        .all(|&v| v == 0xAA)
                );
            }
        }
    }
    // Spot-check the layouts by name.
    let one = RgbImage {
        width: 1,
        height: 1,
        data: vec![1, 2, 3],
    };
    let mut out = [0u8; 4];
    for (format, want) in [
        (PixelFormat::Rgbx, [1, 2, 3, 255]),
        (PixelFormat::Bgrx, [3, 2, 1, 255]),
        (PixelFormat::Xrgb, [255, 1, 2, 3]),
        (PixelFormat::Xbgr, [255, 3, 2, 1]),
        (PixelFormat::Rgba, [1, 2, 3, 255]),
        (PixelFormat::Bgra, [3, 2, 1, 255]),
        (PixelFormat::Argb, [255, 1, 2, 3]),
        (PixelFormat::Abgr, [255, 3, 2, 1]),
    ] {
        one.write_to(format, 4, &mut out).unwrap();
        assert_eq!(out, want, "{format:?}");
    }
    let mut out3 = [0u8; 3];
    one.write_to(PixelFormat::Bgr, 3, &mut out3).unwrap();
    assert_eq!(out3, [3, 2, 1]);
}

#[test]
fn write_to_rejects_bad_buffers() {
    let img = synthetic(10, 4);
    let mut small = vec![0u8; 10 * 4 * 3 - 1];
    assert!(matches!(
        img.write_to(PixelFormat::Rgb, 30, &mut small),
        Err(Error::InvalidInput(_))
    ));
    let mut buf = vec![0u8; 1000];
    assert!(img.write_to(PixelFormat::Rgba, 30, &mut buf).is_err());
    // The last row needs no padding after it.
    let mut exact = vec![0u8; 3 * 50 + 30];
    assert!(img.write_to(PixelFormat::Rgb, 50, &mut exact).is_ok());
    let bad = RgbImage {
        width: 10,
        height: 4,
        data: vec![0; 5],
    };
    assert!(bad.write_to(PixelFormat::Rgb, 30, &mut buf).is_err());
}

#[test]
fn every_input_format_encodes_identically() {
    let b = bundle();
    let mut enc = Encoder::new(b);
    let img = synthetic(70, 50);
    let reference = enc.encode(as_ref(&img), 1).unwrap().bytes;
    for format in PixelFormat::ALL {
        let (buf, stride) = written(&img, format, 5);
        // Alpha must be ignored: scribble over it.
        let mut buf = buf;
        if let Some(f) = format.filler_offset() {
            let bpp = format.bytes_per_pixel();
            for y in 0..50 {
                for x in 0..70 {
                    buf[y * stride + x * bpp + f] = (x * y) as u8;
                }
            }
        }
        let image = ImageRef {
            width: 70,
            height: 50,
            stride,
            format,
            data: &buf,
        };
        let frame = enc.encode(image, 1).unwrap().bytes;
        assert_eq!(frame, reference, "{format:?} with stride {stride}");
    }
}
