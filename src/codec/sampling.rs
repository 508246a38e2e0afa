//! Seeded generator for synonymous sampling (docs/model.md rule 5).
//!
//! SplitMix64: tiny, fast, and its output for a given seed is fixed forever, so a decoder run
//! with the same seed reproduces the same picture on every machine.

pub(crate) struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64 { state: seed }
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 24 bits of resolution (exact in f32).
    pub fn next_unit_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 * (1.0 / (1u64 << 24) as f32)
    }

    /// `round(u)` with `u ~ U(-2, 2)`: the synonymous offset added to a slice mean.
    pub fn synonym_offset(&mut self) -> f32 {
        (self.next_unit_f32() * 4.0 - 2.0).round_ties_even()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_in_range() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        let mut counts = [0usize; 5];
        for _ in 0..40_000 {
            let x = a.synonym_offset();
            assert_eq!(x.to_bits(), b.synonym_offset().to_bits());
            assert!((-2.0..=2.0).contains(&x) && x.fract() == 0.0);
            counts[(x + 2.0) as usize] += 1;
        }
        // round(U(-2,2)) puts 1/8 on ±2 and 1/4 on -1, 0, 1.
        for (i, &c) in counts.iter().enumerate() {
            let p = if i == 0 || i == 4 { 0.125 } else { 0.25 };
            let f = c as f64 / 40_000.0;
            assert!(
                (f - p).abs() < 0.01,
                "offset {} frequency {f}",
                i as i32 - 2
            );
        }
        assert_ne!(SplitMix64::new(1).next_u64(), SplitMix64::new(2).next_u64());
    }
}
