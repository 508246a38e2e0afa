//! The decoder: docs/model.md rules 2–6.

use std::sync::Arc;
use std::time::Instant;

use super::bitstream::split_frame;
use super::sampling::SplitMix64;
use super::tensor::{pad_to, planar_to_rgb};
use super::{
    Bundle, DEFAULT_TILE_SIZE, Error, MAX_AREA, RgbImage, Sampling, Timing, check_tile_size,
    entropy, model_id_to_hex,
};

#[derive(Debug, Clone)]
pub struct Decoded {
    pub image: RgbImage,
    /// Layers actually used (min of carried and max_layers).
    pub layers: u8,
    pub timing: Timing,
}

pub struct Decoder {
    bundle: Arc<Bundle>,
    max_area: u64,
    tile: usize,
}

impl Decoder {
    pub fn new(bundle: Arc<Bundle>) -> Self {
        Decoder {
            bundle,
            max_area: MAX_AREA,
            tile: DEFAULT_TILE_SIZE as usize,
        }
    }

    /// Runs the synthesis in tiles of `tile` pixels (0 or a multiple of 64; 0 = never) on
    /// pictures larger than that. The picture is the same; only the peak memory changes.
    pub fn set_tile_size(&mut self, tile: u32) -> Result<(), Error> {
        self.tile = check_tile_size(tile)?;
        Ok(())
    }

    /// Refuses frames whose picture is larger than `area` pixels (default and upper bound:
    /// [`MAX_AREA`]). A frame header is a few bytes, but decoding costs memory and time in
    /// proportion to the picture size it declares; a decoder that knows the expected size (from
    /// caps) can refuse bigger frames before running any network.
    pub fn set_max_area(&mut self, area: u64) {
        self.max_area = area.min(MAX_AREA);
    }

    pub fn bundle(&self) -> &Arc<Bundle> {
        &self.bundle
    }

    /// Decodes using at most `max_layers` of the carried layers (0 = all).
    pub fn decode(
        &mut self,
        frame: &[u8],
        max_layers: u8,
        sampling: Sampling,
    ) -> Result<Decoded, Error> {
        self.decode_with_latent(frame, max_layers, sampling)
            .map(|(d, _)| d)
    }

    /// Like [`Self::decode`], also returning the full latent `ŷ` fed to the synthesis
    /// (`[M, h, w]` order). For exactness tests.
    #[doc(hidden)]
    pub fn decode_with_latent(
        &mut self,
        frame: &[u8],
        max_layers: u8,
        sampling: Sampling,
    ) -> Result<(Decoded, Vec<f32>), Error> {
        let b = &*self.bundle;
        let mut timing = Timing::default();

        let t = Instant::now();
        let (header, segments) = split_frame(frame)?;
        if header.model_id != b.model_id() {
            return Err(Error::ModelMismatch {
                expected: b.model_id_hex(),
                found: model_id_to_hex(&header.model_id),
            });
        }
        if header.levels != b.levels() {
            return Err(Error::Bitstream(format!(
                "frame declares {} levels, the model has {}",
                header.levels,
                b.levels()
            )));
        }
        let area = header.width as u64 * header.height as u64;
        if area > self.max_area {
            return Err(Error::Bitstream(format!(
                "frame is {}x{}, larger than the {} pixels this decoder accepts",
                header.width, header.height, self.max_area
            )));
        }
        let used = if max_layers == 0 {
            header.layers
        } else {
            header.layers.min(max_layers)
        };
        let pad = b.pad_multiple();
        let (hp, wp) = (
            pad_to(header.height as usize, pad),
            pad_to(header.width as usize, pad),
        );
        let (h, w) = (hp / 16, wp / 16);
        let (hz, wz) = (h.div_ceil(4), w.div_ceil(4));
        timing.convert += t.elapsed().as_secs_f64();

        // Rule 2: z.
        let t = Instant::now();
        let em = &b.entropy;
        let zplane = hz * wz;
        let zc = b.z_channels();
        let z_sym = entropy::decode(segments[0], zc * zplane, |i| &em.z[i / zplane])
            .map_err(|e| Error::Bitstream(format!("segment 0 (z): {e}")))?;
        let z_hat: Vec<f32> = z_sym
            .iter()
            .enumerate()
            .map(|(i, &s)| s as f32 + em.z_median[i / zplane])
            .collect();
        timing.entropy += t.elapsed().as_secs_f64();

        // Rule 3.
        let t = Instant::now();
        let hyper = b.run_hyper(&z_hat, h, w)?;
        timing.params += t.elapsed().as_secs_f64();

        // Rules 4 and 5.
        let plane = h * w;
        let levels = b.levels() as usize;
        let mut y_hat = vec![0f32; b.slice_offset(levels) * plane];
        let mut rng = match sampling {
            Sampling::Uniform { seed } => Some(SplitMix64::new(seed)),
            Sampling::Mean => None,
        };
        for k in 0..levels {
            let (o0, o1) = (b.slice_offset(k) * plane, b.slice_offset(k + 1) * plane);
            let t = Instant::now();
            let (mean, scale) = b.run_slice(k, &hyper, &y_hat[..o0], h, w)?;
            timing.params += t.elapsed().as_secs_f64();

            let t = Instant::now();
            let out = &mut y_hat[o0..o1];
            if k < used as usize {
                let buckets: Vec<u32> = scale.iter().map(|&s| em.bucket(s) as u32).collect();
                let q = entropy::decode(segments[k + 1], o1 - o0, |i| &em.y[buckets[i] as usize])
                    .map_err(|e| {
                    Error::Bitstream(format!("segment {} (slice {k}): {e}", k + 1))
                })?;
                for ((v, &s), &m) in out.iter_mut().zip(&q).zip(&mean) {
                    *v = s as f32 + m;
                }
            } else if let Some(rng) = rng.as_mut() {
                for (v, &m) in out.iter_mut().zip(&mean) {
                    *v = m + rng.synonym_offset();
                }
            } else {
                out.copy_from_slice(&mean);
            }
            timing.entropy += t.elapsed().as_secs_f64();
        }

        // Rule 6.
        let t = Instant::now();
        // The level modulation answers mean fills (it was trained on them); sampled slices
        // are synthesised as coded ones, as before it (docs/model.md, rule 6).
        let told = match sampling {
            Sampling::Mean => used,
            Sampling::Uniform { .. } => b.levels(),
        };
        let x_hat = b.run_synthesis(&y_hat, h, w, told, self.tile)?;
        timing.transform += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let image = planar_to_rgb(&x_hat, hp, wp, header.width, header.height);
        timing.convert += t.elapsed().as_secs_f64();
        Ok((
            Decoded {
                image,
                layers: used,
                timing,
            },
            y_hat,
        ))
    }
}
