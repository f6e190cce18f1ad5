"""PSNR/SSIM by the protocol: published bicubic figures, a brute-force SSIM, edge cases, bad input."""

import math
from pathlib import Path

import numpy as np
import pytest

from lsm_jax.data.image_io import read_rgb8
from lsm_jax.data.imresize import imresize
from lsm_jax.evaluation.metrics import gaussian_window, psnr, quantize, rgb_to_y, sr_scores, ssim

SET5 = Path(__file__).parents[1] / "data" / "Set5"
NAMES = ("baby", "bird", "butterfly", "head", "woman")
# Published bicubic rows (Set5), PSNR dB / SSIM; x3 has no acceptance figure in the issue.
PUBLISHED = {2: (33.66, 0.9299), 4: (28.42, 0.8104)}


def _bicubic_set5(scale):
    ps, ss = [], []
    for n in NAMES:
        hr = read_rgb8(SET5 / "HR" / f"{n}.png")
        lr = read_rgb8(SET5 / "LR_bicubic" / f"X{scale}" / f"{n}x{scale}.png")
        sr = np.asarray(imresize(lr, scale))
        p, s = sr_scores(sr, hr[: sr.shape[0], : sr.shape[1]], scale)
        ps.append(p)
        ss.append(s)
    return float(np.mean(ps)), float(np.mean(ss))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_bicubic_set5_matches_published(scale):
    p, s = _bicubic_set5(scale)
    print(f"Set5 bicubic x{scale}: {p:.4f} dB / {s:.5f}")
    if scale in PUBLISHED:
        assert abs(p - PUBLISHED[scale][0]) <= 0.03
        assert abs(s - PUBLISHED[scale][1]) <= 0.001
    else:  # x3 is bounded by its neighbours
        assert _bicubic_set5(4)[0] < p < _bicubic_set5(2)[0]


def _ssim_bruteforce(a, b):
    """SSIM from explicit 11x11 windows (2-D outer-product Gaussian), float64."""
    g = gaussian_window()
    w2 = np.outer(g, g)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    vals = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            pa, pb = a[i : i + 11, j : j + 11], b[i : i + 11, j : j + 11]
            ma, mb = (w2 * pa).sum(), (w2 * pb).sum()
            va = (w2 * pa * pa).sum() - ma * ma
            vb = (w2 * pb * pb).sum() - mb * mb
            cov = (w2 * pa * pb).sum() - ma * mb
            vals.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2)))
    return float(np.mean(vals))


def test_ssim_and_psnr_match_bruteforce_on_y():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (26, 31, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-30, 31, a.shape), 0, 255).astype(np.uint8)
    crop = 3
    ya, yb = rgb_to_y(a)[crop:-crop, crop:-crop], rgb_to_y(b)[crop:-crop, crop:-crop]
    assert ssim(a, b, crop) == pytest.approx(_ssim_bruteforce(ya, yb), abs=1e-12)
    mse = np.mean((ya - yb) ** 2)
    assert psnr(a, b, crop) == pytest.approx(10 * math.log10(255**2 / mse), abs=1e-10)


def test_gaussian_window():
    g = gaussian_window()
    assert g.shape == (11,) and g.sum() == pytest.approx(1.0)
    assert g[0] / g[5] == pytest.approx(math.exp(-25 / (2 * 1.5**2)))


def test_y_channel_bt601_range():
    px = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], np.uint8)
    y = rgb_to_y(px)
    np.testing.assert_allclose(y[0], [16.0, 235.0, 16 + 65.481], atol=1e-9)


def test_identical_images():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    assert psnr(a, a, 2) == float("inf")
    assert ssim(a, a, 2) == pytest.approx(1.0, abs=1e-12)


def test_constant_images():
    """Two flat grey images: closed forms for PSNR and SSIM (variances are zero)."""
    va, vb = 100, 110
    a, b = np.full((24, 24, 3), va, np.uint8), np.full((24, 24, 3), vb, np.uint8)
    ya, yb = 16 + va * 219 / 255, 16 + vb * 219 / 255
    assert psnr(a, b, 4) == pytest.approx(20 * math.log10(255 / abs(ya - yb)), abs=1e-9)
    c1 = (0.01 * 255) ** 2
    assert ssim(a, b, 4) == pytest.approx((2 * ya * yb + c1) / (ya**2 + yb**2 + c1), abs=1e-9)
    assert ssim(a, a, 4) == pytest.approx(1.0)


def test_quantize_matches_tensor2img():
    x = np.array([-0.2, 0.0, 0.5 / 255, 1.5 / 255, 0.5, 1.0, 1.3], np.float32)
    # clamp, x255 in float32, round half to even
    np.testing.assert_array_equal(quantize(x), [0, 0, 0, 2, 128, 255, 255])


def test_crop_border_and_rgb_mode():
    rng = np.random.default_rng(2)
    a = rng.integers(0, 256, (30, 30, 3), dtype=np.uint8)
    b = a.copy()
    b[:3] = 0  # damage only the border rows
    assert psnr(a, b, 3) == float("inf")
    assert psnr(a, b, 2) < 40
    assert psnr(a, b, 3, test_y_channel=False) == float("inf")


def test_bad_inputs_are_clear_errors():
    a = np.zeros((20, 20, 3), np.uint8)
    with pytest.raises(ValueError, match=r"shapes differ.*\(20, 20, 3\).*\(20, 21, 3\)"):
        psnr(a, np.zeros((20, 21, 3), np.uint8))
    with pytest.raises(ValueError, match="shapes differ"):
        ssim(a, np.zeros((21, 20, 3), np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        psnr(a.astype(np.float32), a)
    with pytest.raises(ValueError, match="RGB"):
        psnr(a[..., :2], a[..., :2])
    with pytest.raises(ValueError, match="11x11"):
        ssim(a, a, crop_border=5)
    with pytest.raises(ValueError, match="leaves nothing"):
        psnr(a, a, crop_border=10)


def test_agrees_with_dm_pix_when_installed():
    """dm-pix's SSIM (float64) gives the same numbers; it is not a dependency (see metrics docstring)."""
    pix = pytest.importorskip("dm_pix")
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(3)
    a = rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    ya, yb = rgb_to_y(a)[2:-2, 2:-2, None], rgb_to_y(b)[2:-2, 2:-2, None]
    with jax.enable_x64(True):
        theirs = float(pix.ssim(jnp.asarray(ya), jnp.asarray(yb), max_val=255.0))
    assert ssim(a, b, 2) == pytest.approx(theirs, abs=1e-9)
