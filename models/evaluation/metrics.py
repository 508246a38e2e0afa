"""PSNR (RGB), MS-SSIM, LPIPS-Alex and DISTS of a reconstruction against the original RGB."""

import math

import numpy as np
import torch


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10.0 * math.log10(255.0 ** 2 / mse)


def _t(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(img, copy=True)).permute(2, 0, 1)[None].float()


def msssim(a: np.ndarray, b: np.ndarray) -> float:
    """pytorch-msssim MS-SSIM (5 scales, 11x11 Gaussian window); for images whose short side
    is at most 160 px the window shrinks (odd, >= 3) so that 5 scales still fit."""
    from pytorch_msssim import ms_ssim
    side = min(a.shape[:2])
    win = 11
    while win > 3 and side <= (win - 1) * 16:
        win -= 2
    if side <= (win - 1) * 16:
        raise ValueError(f"image too small for MS-SSIM: {a.shape}")
    return float(ms_ssim(_t(a), _t(b), data_range=255.0, win_size=win, size_average=True))


class Perceptual:
    """LPIPS-Alex and DISTS (training.perceptual, training.dists; offline weights), loaded once."""

    def __init__(self, want_dists=True):
        from training.perceptual import LPIPSAlex
        self.lpips = LPIPSAlex()
        self.dists = None
        self.dists_error = None
        self._ref = None
        if want_dists:
            try:
                from training.dists import DISTS
                self.dists = DISTS()
            except Exception as e:      # reported in results.md, never silently
                self.dists_error = f"{type(e).__name__}: {e}"

    @torch.no_grad()
    def __call__(self, a: np.ndarray, b: np.ndarray) -> dict:
        """a: the original (its DISTS features are cached between calls), b: the reconstruction."""
        ta, tb = _t(a) / 255.0, _t(b) / 255.0
        out = {"lpips": float(self.lpips(ta, tb)[0])}
        if self.dists is None:
            out["dists"] = float("nan")
        else:
            if self._ref is None or self._ref[0] is not a:
                self._ref = (a, self.dists.features(ta))
            out["dists"] = float(self.dists(ta, tb, fa=self._ref[1])[0])
        return out


def all_metrics(orig: np.ndarray, rec: np.ndarray, perceptual: Perceptual) -> dict:
    if orig.shape != rec.shape:
        raise ValueError(f"shape mismatch {orig.shape} vs {rec.shape}")
    m = {"psnr": psnr(orig, rec), "msssim": msssim(orig, rec)}
    m.update(perceptual(orig, rec))
    return m
