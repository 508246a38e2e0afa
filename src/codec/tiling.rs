//! Running a heavy network tile by tile.
//!
//! `g_a` and `g_s` need hundreds of bytes of working memory per pixel, so a large picture run in
//! one piece can need gigabytes. Every output position of a convolutional network depends only
//! on inputs within its receptive field, so a tile computed with a margin (`halo`) at least that
//! wide around the part it keeps (`core`) gives the same numbers as the whole picture: the
//! zero padding at a tile's cut edges never reaches its core. At the picture's own edges a tile
//! ends where the picture does, exactly as the whole run sees it. The margins each graph needs
//! are stated by the bundle (`model.json` → `tiling`, docs/model.md).

use std::ops::Range;

/// One tile along one axis: the positions it is computed on (`ext`) and the ones it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    pub ext: Range<usize>,
    pub core: Range<usize>,
}

impl Span {
    /// For a network with `num` output positions per `den` input positions: where the core's
    /// outputs lie in the tile's output, and where they start in the whole output. A last
    /// output position only partly covered by the core counts (z at a picture's edge).
    pub fn placed(&self, num: usize, den: usize) -> (Range<usize>, usize) {
        let at = |p: usize| (p * num).div_ceil(den);
        let from = at(self.core.start) - at(self.ext.start);
        (
            from..from + at(self.core.end) - at(self.core.start),
            at(self.core.start),
        )
    }
}

/// Cuts `0..len` into cores of `core` positions (the last may be shorter), each widened by
/// `halo` on both sides within `0..len`. One span covers everything when `core` is 0 or when
/// `len` is no longer than one widened core: cutting it would save no memory, only add work.
pub(crate) fn spans(len: usize, core: usize, halo: usize) -> Vec<Span> {
    if core == 0 || len <= core + 2 * halo {
        return vec![Span {
            ext: 0..len,
            core: 0..len,
        }];
    }
    (0..len)
        .step_by(core)
        .map(|start| {
            let end = (start + core).min(len);
            Span {
                ext: start.saturating_sub(halo)..(end + halo).min(len),
                core: start..end,
            }
        })
        .collect()
}

/// The `rows` × `cols` window of every `h` × `w` plane of a planar tensor, as a new tensor.
pub(crate) fn window(
    x: &[f32],
    h: usize,
    w: usize,
    rows: &Range<usize>,
    cols: &Range<usize>,
) -> Vec<f32> {
    let planes = x.len() / (h * w);
    let mut out = Vec::with_capacity(planes * rows.len() * cols.len());
    for plane in x.chunks_exact(h * w) {
        for r in rows.clone() {
            out.extend_from_slice(&plane[r * w + cols.start..r * w + cols.end]);
        }
    }
    out
}

/// Copies the `rows` × `cols` part of tile `src` (planes of `sh` × `sw`) into `dst` (planes of
/// `dh` × `dw`) with its top-left corner at (`at_row`, `at_col`).
pub(crate) fn paste(
    dst: &mut [f32],
    (dh, dw): (usize, usize),
    src: &[f32],
    (sh, sw): (usize, usize),
    (rows, at_row): (Range<usize>, usize),
    (cols, at_col): (Range<usize>, usize),
) {
    for (d, s) in dst.chunks_exact_mut(dh * dw).zip(src.chunks_exact(sh * sw)) {
        for (i, r) in rows.clone().enumerate() {
            let to = (at_row + i) * dw + at_col;
            d[to..to + cols.len()].copy_from_slice(&s[r * sw + cols.start..r * sw + cols.end]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_span_when_it_fits_or_tiling_is_off() {
        for (len, core) in [(100, 0), (100, 100), (100, 400), (100, 86)] {
            assert_eq!(
                spans(len, core, 7),
                [Span {
                    ext: 0..100,
                    core: 0..100
                }]
            );
        }
    }

    #[test]
    fn cores_cover_once_and_margins_stay_inside() {
        let s = spans(11, 4, 3);
        let cores: Vec<_> = s.iter().map(|s| s.core.clone()).collect();
        let exts: Vec<_> = s.iter().map(|s| s.ext.clone()).collect();
        assert_eq!(cores, [0..4, 4..8, 8..11]);
        assert_eq!(exts, [0..7, 1..11, 5..11]);
    }

    #[test]
    fn placement_in_coarser_and_finer_outputs() {
        let s = Span {
            ext: 64..448,
            core: 256..336,
        };
        // One output per 64 inputs: the core covers outputs 4 and 5 (5 only partly).
        assert_eq!(s.placed(1, 64), (3..5, 4));
        // 16 outputs per input.
        assert_eq!(s.placed(16, 1), (3072..4352, 4096));
    }

    #[test]
    fn window_then_paste_rebuilds_the_tensor() {
        // 2 planes of 5 x 6, values = plane * 100 + row * 10 + column
        let (h, w) = (5, 6);
        let x: Vec<f32> = (0..2 * h * w)
            .map(|i| ((i / 30) * 100 + (i % 30 / 6) * 10 + i % 6) as f32)
            .collect();
        let mut out = vec![-1.0; x.len()];
        for rs in spans(h, 2, 1) {
            for cs in spans(w, 4, 1) {
                let t = window(&x, h, w, &rs.ext, &cs.ext);
                let (th, tw) = (rs.ext.len(), cs.ext.len());
                assert_eq!(t[0], (rs.ext.start * 10 + cs.ext.start) as f32);
                assert_eq!(t[th * tw], (100 + rs.ext.start * 10 + cs.ext.start) as f32);
                paste(
                    &mut out,
                    (h, w),
                    &t,
                    (th, tw),
                    rs.placed(1, 1),
                    cs.placed(1, 1),
                );
            }
        }
        assert_eq!(out, x);
    }
}
