import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))   # models/

from evaluation.bd import bd_metric, bd_rate  # noqa: E402

RATES = np.array([0.1, 0.25, 0.5, 1.0, 2.0])
PSNR = 30 + 4 * np.log2(RATES / 0.1)          # any increasing curve


def test_half_rate_is_minus_50_percent():
    assert bd_rate(RATES, PSNR, RATES * 0.5, PSNR) == pytest.approx(-50.0, abs=1e-9)


def test_double_rate_is_plus_100_percent():
    assert bd_rate(RATES, PSNR, RATES * 2.0, PSNR) == pytest.approx(100.0, abs=1e-9)


def test_identical_curves_give_zero():
    assert bd_rate(RATES, PSNR, RATES, PSNR) == pytest.approx(0.0, abs=1e-12)
    assert bd_metric(RATES, PSNR, RATES, PSNR) == pytest.approx(0.0, abs=1e-12)


def test_lower_is_better_metric():
    lp = 0.5 - 0.08 * np.log2(RATES / 0.1)     # LPIPS-like, falls with rate
    assert bd_rate(RATES, lp, RATES * 0.5, lp, lower_is_better=True) == pytest.approx(-50.0, abs=1e-9)
    worse = lp + 0.02                          # B is worse at every rate -> needs more bits
    assert bd_rate(RATES, lp, RATES, worse, lower_is_better=True) > 0


def test_bd_psnr_constant_offset():
    assert bd_metric(RATES, PSNR, RATES, PSNR + 1.5) == pytest.approx(1.5, abs=1e-9)


def test_unordered_points_and_no_overlap():
    idx = [3, 0, 4, 1, 2]
    assert bd_rate(RATES[idx], PSNR[idx], RATES * 0.5, PSNR) == pytest.approx(-50.0, abs=1e-9)
    assert math.isnan(bd_rate(RATES, PSNR, RATES, PSNR + 100))
