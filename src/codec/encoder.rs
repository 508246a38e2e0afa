//! The encoder: docs/model.md rules 1–4.

use std::sync::Arc;
use std::time::Instant;

use super::bitstream::{self, header_len};
use super::tensor::image_to_planar;
use super::{Bundle, DEFAULT_TILE_SIZE, Error, ImageRef, Timing, check_tile_size, entropy};

#[derive(Debug, Clone)]
pub struct EncodedFrame {
    /// The whole frame (header + segments).
    pub bytes: Vec<u8>,
    /// `layer_sizes[n-1]` = size in bytes of the frame thinned to n layers (n = 1..=layers).
    pub layer_sizes: Vec<usize>,
    pub timing: Timing,
}

/// The rate term of the encoder's quantiser by default (see [`Encoder::set_rdo_lambda`]).
pub const DEFAULT_RDO_LAMBDA: f32 = 0.02;
/// Largest accepted rate term: beyond it nearly every latent collapses to its mean.
pub const MAX_RDO_LAMBDA: f32 = 1.0;

pub struct Encoder {
    bundle: Arc<Bundle>,
    rdo_lambda: f32,
    tile: usize,
}

impl Encoder {
    pub fn new(bundle: Arc<Bundle>) -> Self {
        Encoder {
            bundle,
            rdo_lambda: DEFAULT_RDO_LAMBDA,
            tile: DEFAULT_TILE_SIZE as usize,
        }
    }

    /// Runs the analysis in tiles of `tile` pixels (0 or a multiple of 64; 0 = never) on
    /// pictures larger than that. The frame is the same; only the peak memory changes.
    pub fn set_tile_size(&mut self, tile: u32) -> Result<(), Error> {
        self.tile = check_tile_size(tile)?;
        Ok(())
    }

    pub fn bundle(&self) -> &Arc<Bundle> {
        &self.bundle
    }

    /// Rate-distortion optimised quantisation of y: each latent picks, of the two integers
    /// around it, the one with the lower squared error + `lambda` × its bits under the
    /// symbol's own table (0 = plain rounding, docs/model.md rule 4). Only the encoder's
    /// choice of symbols changes, so every decoder reads the result.
    pub fn set_rdo_lambda(&mut self, lambda: f32) -> Result<(), Error> {
        if !(0.0..=MAX_RDO_LAMBDA).contains(&lambda) {
            return Err(Error::InvalidInput(format!(
                "rdo lambda {lambda} out of range 0..={MAX_RDO_LAMBDA}"
            )));
        }
        self.rdo_lambda = lambda;
        Ok(())
    }

    pub fn rdo_lambda(&self) -> f32 {
        self.rdo_lambda
    }

    /// Encodes at `layers` (1..=L).
    pub fn encode(&mut self, image: ImageRef<'_>, layers: u8) -> Result<EncodedFrame, Error> {
        self.encode_perturbed(image, layers, &mut |_, _| {})
            .map(|(f, _)| f)
    }

    /// Like [`Self::encode`], also returning the encoder's `ŷ` for the transmitted slices
    /// (channels `0..O_layers`, `[C, h, w]` order). For exactness tests.
    #[doc(hidden)]
    pub fn encode_with_latent(
        &mut self,
        image: ImageRef<'_>,
        layers: u8,
    ) -> Result<(EncodedFrame, Vec<f32>), Error> {
        self.encode_perturbed(image, layers, &mut |_, _| {})
    }

    /// Like [`Self::encode_with_latent`], with `perturb(y, z)` applied to the analysis outputs
    /// before quantisation (simulates g_a running on another device or thread count).
    #[doc(hidden)]
    pub fn encode_perturbed(
        &mut self,
        image: ImageRef<'_>,
        layers: u8,
        perturb: &mut dyn FnMut(&mut [f32], &mut [f32]),
    ) -> Result<(EncodedFrame, Vec<f32>), Error> {
        let b = &*self.bundle;
        let levels = b.levels();
        if layers == 0 || layers > levels {
            return Err(Error::InvalidInput(format!(
                "layers {layers} out of range 1..={levels}"
            )));
        }
        let mut timing = Timing::default();

        // Rule 1: padding and scaling.
        let t = Instant::now();
        let x = image_to_planar(&image, b.pad_multiple())?;
        let (hp, wp) = (x.height, x.width);
        let (h, w) = (hp / 16, wp / 16);
        let (hz, wz) = (h.div_ceil(4), w.div_ceil(4));
        timing.convert += t.elapsed().as_secs_f64();

        let t = Instant::now();
        let (mut y, mut z) = b.run_analysis(&x.data, hp, wp, self.tile)?;
        timing.transform += t.elapsed().as_secs_f64();
        perturb(&mut y, &mut z);

        // Rule 2: z.
        let t = Instant::now();
        let em = &b.entropy;
        let zplane = hz * wz;
        let mut z_sym = vec![0i32; z.len()];
        let mut z_hat = vec![0f32; z.len()];
        for c in 0..b.z_channels() {
            let (table, median) = (&em.z[c], em.z_median[c]);
            for i in c * zplane..(c + 1) * zplane {
                let s = table.quantize(z[i] - median);
                z_sym[i] = s;
                z_hat[i] = s as f32 + median;
            }
        }
        let mut segments = Vec::with_capacity(layers as usize + 1);
        segments.push(entropy::encode(&z_sym, |i| &em.z[i / zplane]).map_err(Error::Inference)?);
        timing.entropy += t.elapsed().as_secs_f64();

        // Rule 3.
        let t = Instant::now();
        let hyper = b.run_hyper(&z_hat, h, w)?;
        timing.params += t.elapsed().as_secs_f64();

        // Rule 4: slices 0..layers.
        let plane = h * w;
        let sent = b.slice_offset(layers as usize) * plane;
        let mut y_hat = vec![0f32; sent];
        for k in 0..layers as usize {
            let (o0, o1) = (b.slice_offset(k) * plane, b.slice_offset(k + 1) * plane);
            let t = Instant::now();
            let (mean, scale) = b.run_slice(k, &hyper, &y_hat[..o0], h, w)?;
            timing.params += t.elapsed().as_secs_f64();

            let t = Instant::now();
            let n = o1 - o0;
            let mut buckets = Vec::with_capacity(n);
            let mut q = Vec::with_capacity(n);
            for i in 0..n {
                let bk = em.bucket(scale[i]);
                let s = em.y[bk].quantize_rd(y[o0 + i] - mean[i], self.rdo_lambda);
                y_hat[o0 + i] = s as f32 + mean[i];
                buckets.push(bk as u32);
                q.push(s);
            }
            segments.push(
                entropy::encode(&q, |i| &em.y[buckets[i] as usize]).map_err(Error::Inference)?,
            );
            timing.entropy += t.elapsed().as_secs_f64();
        }

        let t = Instant::now();
        let bytes = bitstream::assemble(b.model_id(), image.width, image.height, levels, &segments);
        let mut layer_sizes = Vec::with_capacity(layers as usize);
        let mut payload = segments[0].len();
        for (n, seg) in segments.iter().enumerate().skip(1) {
            payload += seg.len();
            layer_sizes.push(header_len(n as u8) + payload);
        }
        timing.convert += t.elapsed().as_secs_f64();
        Ok((
            EncodedFrame {
                bytes,
                layer_sizes,
                timing,
            },
            y_hat,
        ))
    }
}
