//! Entropy models and ANS coding.
//!
//! Every model is a categorical distribution built once, at bundle load, from the integer
//! frequency tables of `model.json` (docs/model.md): one per z channel and one per y scale
//! bucket. Coding a symbol is then a table look-up; no CDF is evaluated per symbol, and encoder
//! and decoder use bit-identical models on every machine.
//!
//! Each segment is an independent constriction `DefaultAnsCoder` stream (32-bit words, stored
//! little-endian). ANS is a stack, so symbols are pushed in reverse and popped in order.

use constriction::stream::model::DefaultContiguousCategoricalEntropyModel;
use constriction::stream::stack::DefaultAnsCoder;
use constriction::stream::{Decode, Encode};
use serde::Deserialize;

/// Fixed-point precision of the models inside the coder (tables are scaled up to it exactly).
const CODER_PRECISION: u32 = 24;

/// `entropy` object of model.json.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct EntropyMeta {
    pub precision: u32,
    pub z: Vec<ZTableMeta>,
    pub y_scale_table: Vec<f64>,
    pub y: Vec<TableMeta>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ZTableMeta {
    pub median: f64,
    pub min: i64,
    pub freqs: Vec<u64>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct TableMeta {
    pub min: i64,
    pub freqs: Vec<u64>,
}

/// One categorical model over the integers `min ..= max`.
pub(crate) struct Table {
    pub min: i32,
    pub max: i32,
    model: DefaultContiguousCategoricalEntropyModel,
    /// Information content of each symbol in bits, `-log2(freq / 2^precision)`: the rate term
    /// of the encoder's rate-distortion quantiser.
    bits: Vec<f32>,
}

impl Table {
    /// Builds a model from frequencies (each >= 1, summing to `2^precision`).
    pub fn new(min: i64, freqs: &[u64], precision: u32) -> Result<Table, String> {
        if !(1..=CODER_PRECISION).contains(&precision) {
            return Err(format!(
                "precision {precision} out of range 1..={CODER_PRECISION}"
            ));
        }
        if freqs.is_empty() {
            return Err("empty frequency table".into());
        }
        let max = min
            .checked_add(freqs.len() as i64 - 1)
            .filter(|&m| min >= -(1 << 30) && m <= (1 << 30))
            .ok_or_else(|| format!("symbol range {min} + {} is too large", freqs.len()))?;
        let mut sum = 0u64;
        for (i, &f) in freqs.iter().enumerate() {
            if f == 0 {
                return Err(format!("frequency of symbol {} is 0", min + i as i64));
            }
            sum = sum.saturating_add(f);
        }
        if sum != 1u64 << precision {
            return Err(format!(
                "frequencies sum to {sum}, want 2^{precision} = {}",
                1u64 << precision
            ));
        }
        let bits = freqs
            .iter()
            .map(|&f| (precision as f64 - (f as f64).log2()) as f32)
            .collect();
        let shift = CODER_PRECISION - precision;
        let probs: Vec<u32> = freqs.iter().map(|&f| (f as u32) << shift).collect();
        let model =
            DefaultContiguousCategoricalEntropyModel::from_nonzero_fixed_point_probabilities(
                &probs, false,
            )
            .map_err(|()| "frequency table rejected by the entropy coder".to_string())?;
        Ok(Table {
            min: min as i32,
            max: max as i32,
            model,
            bits,
        })
    }

    /// `clamp(round(v), min, max)` (round half to even, NaN -> 0 before clamping).
    pub fn quantize(&self, v: f32) -> i32 {
        let r = v.round_ties_even();
        // `as i64` saturates and maps NaN to 0.
        (r as i64).clamp(self.min as i64, self.max as i64) as i32
    }

    /// Rate-distortion quantiser: of the two integers around `v` (within the range), the one
    /// with the lower `(v - q)^2 + lambda * bits(q)`, ties to the lower. The squared error is
    /// measured in the latent, a proxy for the image error; `lambda <= 0` (or a non-finite
    /// `v`) is plain [`Self::quantize`]. Any choice decodes: the decoder only reads `q`.
    pub fn quantize_rd(&self, v: f32, lambda: f32) -> i32 {
        if lambda.is_nan() || lambda <= 0.0 || !v.is_finite() {
            return self.quantize(v);
        }
        let fl = v.floor() as i64;
        let clamp = |q: i64| q.clamp(self.min as i64, self.max as i64) as i32;
        let (lo, hi) = (clamp(fl), clamp(fl + 1));
        let cost = |q: i32| {
            let d = v - q as f32;
            d * d + lambda * self.bits[(q - self.min) as usize]
        };
        if cost(hi) < cost(lo) { hi } else { lo }
    }
}

/// All entropy models of a bundle.
pub(crate) struct EntropyModels {
    pub z_median: Vec<f32>,
    pub z: Vec<Table>,
    pub scale_table: Vec<f32>,
    pub y: Vec<Table>,
}

impl EntropyModels {
    pub fn new(meta: &EntropyMeta) -> Result<EntropyModels, String> {
        let mut z = Vec::with_capacity(meta.z.len());
        let mut z_median = Vec::with_capacity(meta.z.len());
        for (c, t) in meta.z.iter().enumerate() {
            if !t.median.is_finite() {
                return Err(format!("entropy.z[{c}].median is not finite"));
            }
            z_median.push(t.median as f32);
            z.push(
                Table::new(t.min, &t.freqs, meta.precision)
                    .map_err(|e| format!("entropy.z[{c}]: {e}"))?,
            );
        }
        if meta.y_scale_table.is_empty() {
            return Err("entropy.y_scale_table is empty".into());
        }
        let scale_table: Vec<f32> = meta.y_scale_table.iter().map(|&s| s as f32).collect();
        for (i, w) in scale_table.windows(2).enumerate() {
            if w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less) {
                return Err(format!(
                    "entropy.y_scale_table is not strictly increasing at entry {}",
                    i + 1
                ));
            }
        }
        if !scale_table.iter().all(|s| s.is_finite() && *s > 0.0) {
            return Err("entropy.y_scale_table has a non-positive or non-finite entry".into());
        }
        if meta.y.len() != scale_table.len() {
            return Err(format!(
                "entropy.y has {} tables but y_scale_table has {} entries",
                meta.y.len(),
                scale_table.len()
            ));
        }
        let mut y = Vec::with_capacity(meta.y.len());
        for (b, t) in meta.y.iter().enumerate() {
            y.push(
                Table::new(t.min, &t.freqs, meta.precision)
                    .map_err(|e| format!("entropy.y[{b}]: {e}"))?,
            );
        }
        Ok(EntropyModels {
            z_median,
            z,
            scale_table,
            y,
        })
    }

    /// Scale bucket: the smallest `i` with `scale_table[i] >= scale`, else the last entry
    /// (also for NaN). Comparisons in f32.
    pub fn bucket(&self, scale: f32) -> usize {
        // `t < scale` is false for NaN; NaN must land past the end, so test "not >=".
        let i = self
            .scale_table
            .partition_point(|&t| t.partial_cmp(&scale).is_none_or(|o| o.is_lt()));
        i.min(self.scale_table.len() - 1)
    }
}

/// Encodes `symbols[i]` with `model_of(i)` into one independent ANS stream.
pub(crate) fn encode<'a>(
    symbols: &[i32],
    model_of: impl Fn(usize) -> &'a Table,
) -> Result<Vec<u8>, String> {
    let mut coder = DefaultAnsCoder::new();
    for i in (0..symbols.len()).rev() {
        let t = model_of(i);
        let s = symbols[i];
        if s < t.min || s > t.max {
            return Err(format!(
                "symbol {s} outside its model's range {}..={}",
                t.min, t.max
            ));
        }
        coder
            .encode_symbol((s - t.min) as usize, &t.model)
            .map_err(|e| format!("entropy coder: {e:?}"))?;
    }
    let words = coder
        .into_compressed()
        .map_err(|e| format!("entropy coder: {e:?}"))?;
    let mut out = Vec::with_capacity(words.len() * 4);
    for w in words {
        out.extend_from_slice(&w.to_le_bytes());
    }
    Ok(out)
}

/// Decodes `count` symbols, symbol `i` with `model_of(i)`, from one ANS stream. The stream must
/// be consumed exactly (this catches most corruption).
pub(crate) fn decode<'a>(
    bytes: &[u8],
    count: usize,
    model_of: impl Fn(usize) -> &'a Table,
) -> Result<Vec<i32>, String> {
    if !bytes.len().is_multiple_of(4) {
        return Err(format!("length {} is not a multiple of 4", bytes.len()));
    }
    let words: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mut coder = DefaultAnsCoder::from_compressed(words)
        .map_err(|_| "stream ends in a zero word".to_string())?;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let t = model_of(i);
        let s = coder
            .decode_symbol(&t.model)
            .map_err(|e| format!("entropy decoder: {e:?}"))?;
        out.push(t.min + s as i32);
    }
    if !coder.is_empty() {
        return Err("stream holds more data than its symbols (corrupt segment)".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn laplace_table(min: i64, len: usize, precision: u32) -> Vec<u64> {
        let total = 1u64 << precision;
        let centre = (-min) as f64;
        let w: Vec<f64> = (0..len)
            .map(|i| (-(i as f64 - centre).abs() * 0.7).exp())
            .collect();
        let s: f64 = w.iter().sum();
        let mut f: Vec<u64> = w
            .iter()
            .map(|x| ((x / s) * (total - len as u64) as f64) as u64 + 1)
            .collect();
        let sum: u64 = f.iter().sum();
        f[(-min) as usize] += total - sum;
        f
    }

    #[test]
    fn round_trip_mixed_models() {
        let t0 = Table::new(-5, &laplace_table(-5, 11, 16), 16).unwrap();
        let t1 = Table::new(-20, &laplace_table(-20, 41, 16), 16).unwrap();
        let t2 = Table::new(0, &[1 << 15, 1 << 15], 16).unwrap();
        let tables = [&t0, &t1, &t2];
        let mut rng = crate::codec::sampling::SplitMix64::new(7);
        let n = 5000;
        let which: Vec<usize> = (0..n).map(|_| (rng.next_u64() % 3) as usize).collect();
        let symbols: Vec<i32> = which
            .iter()
            .map(|&k| {
                let t = tables[k];
                let u = rng.next_u64() % 100;
                // mostly near 0, sometimes at the range ends
                let v = if u < 90 { (u % 5) as i32 - 2 } else { t.max };
                v.clamp(t.min, t.max)
            })
            .collect();
        let bytes = encode(&symbols, |i| tables[which[i]]).unwrap();
        assert_eq!(bytes.len() % 4, 0);
        let back = decode(&bytes, n, |i| tables[which[i]]).unwrap();
        assert_eq!(back, symbols);
        // Asking for one symbol too few leaves data behind; corruption is detected or at
        // least never panics.
        assert!(decode(&bytes, n - 1, |i| tables[which[i]]).is_err());
        let mut bad = bytes.clone();
        bad[0] ^= 0x55;
        let _ = decode(&bad, n, |i| tables[which[i]]);
        assert!(decode(&bytes[..bytes.len() - 1], n, |i| tables[which[i]]).is_err());
    }

    #[test]
    fn single_symbol_and_empty_stream() {
        let t = Table::new(3, &[1 << 16], 16).unwrap();
        let bytes = encode(&[3, 3, 3], |_| &t).unwrap();
        assert_eq!(decode(&bytes, 3, |_| &t).unwrap(), vec![3, 3, 3]);
        let _ = decode(&[], 10, |_| &t);
    }

    #[test]
    fn rejects_bad_tables() {
        assert!(Table::new(0, &[], 16).is_err());
        assert!(Table::new(0, &[0, 1 << 16], 16).is_err());
        assert!(Table::new(0, &[5, 7], 16).is_err());
        assert!(Table::new(0, &[1, 1], 30).is_err());
        assert!(Table::new(i64::MAX, &[1 << 15, 1 << 15], 16).is_err());
    }

    #[test]
    fn rd_quantiser_trades_error_for_bits() {
        let t = Table::new(-3, &laplace_table(-3, 7, 16), 16).unwrap();
        // Without a rate term it is plain rounding (ties to even included).
        for v in [
            -2.6f32,
            -0.5,
            0.49,
            0.5,
            1.5,
            2.2,
            -100.0,
            f32::NAN,
            f32::INFINITY,
        ] {
            assert_eq!(t.quantize_rd(v, 0.0), t.quantize(v), "v = {v}");
        }
        // 0 is the cheapest symbol (1 costs about 1 bit more): the rate term pulls 0.6 to it,
        // 0.9 stays at 1; a smaller rate term leaves 0.6 at 1.
        assert_eq!(t.quantize_rd(0.6, 0.3), 0);
        assert_eq!(t.quantize_rd(-0.6, 0.3), 0);
        assert_eq!(t.quantize_rd(0.9, 0.3), 1);
        assert_eq!(t.quantize_rd(0.4, 0.3), 0);
        assert_eq!(t.quantize_rd(0.6, 0.1), 1);
        // It never picks a symbol further away than the two neighbours, and stays in range.
        assert_eq!(t.quantize_rd(2.7, 10.0), 2);
        assert_eq!(t.quantize_rd(50.0, 0.1), 3);
        assert_eq!(t.quantize_rd(-50.0, 0.1), -3);
        // Its choice never costs more bits than rounding.
        for i in -300..300 {
            let v = i as f32 / 100.0;
            let (r, q) = (t.quantize(v), t.quantize_rd(v, 0.05));
            assert!(
                t.bits[(q - t.min) as usize] <= t.bits[(r - t.min) as usize],
                "v = {v}"
            );
        }
    }

    #[test]
    fn quantize_and_bucket() {
        let t = Table::new(-3, &laplace_table(-3, 7, 16), 16).unwrap();
        assert_eq!(t.quantize(0.5), 0);
        assert_eq!(t.quantize(1.5), 2);
        assert_eq!(t.quantize(-100.0), -3);
        assert_eq!(t.quantize(f32::INFINITY), 3);
        assert_eq!(t.quantize(f32::NAN), 0);
        let m = EntropyModels {
            z_median: vec![],
            z: vec![],
            scale_table: vec![0.1, 0.5, 2.0],
            y: vec![],
        };
        assert_eq!(m.bucket(0.05), 0);
        assert_eq!(m.bucket(0.1), 0);
        assert_eq!(m.bucket(0.11), 1);
        assert_eq!(m.bucket(2.0), 2);
        assert_eq!(m.bucket(9.0), 2);
        assert_eq!(m.bucket(f32::NAN), 2);
    }
}
