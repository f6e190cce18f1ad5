"""PSNR and SSIM by the SR evaluation protocol (spec §12; BasicSR's ``calculate_psnr/ssim``).

- The SR output (float, nominally [0, 1]) is clamped and rounded to uint8
  first (:func:`lsm_jax.data.quantize.quantize`: float32 product, round half
  to even, exactly like BasicSR's ``tensor2img``; ``upscale`` writes the same).
- Scores are taken on Y of BT.601 YCbCr (16–235 range, not rounded), after
  trimming ``crop_border`` pixels on each side (``crop_border = scale``).
- PSNR is float64 with peak 255. SSIM uses an 11×11 Gaussian window (σ 1.5)
  on the 0–255 range, C1 = (0.01·255)², C2 = (0.03·255)², averaged over the
  *valid* region (5 pixels trimmed after filtering), in float64.

Everything runs in NumPy float64 on the host: per-image metrics are cheap and
float64 keeps the scores reproducible to the printed decimals. dm-pix's
``ssim`` was considered: its window, constants and valid filtering match, but
it clips the (co)variances and runs in float32 by default, so it is not
exactly this SSIM (see the README).
"""

from __future__ import annotations

import numpy as np

from lsm_jax.data.quantize import quantize  # the rule upscale writes with, so scored == written

__all__ = ["quantize", "rgb_to_y", "psnr", "ssim", "gaussian_window", "sr_scores"]

# BT.601 luma for RGB in [0, 1] giving Y in [16, 235] (BasicSR's bgr2ycbcr, y_only).
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966], dtype=np.float64)
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3) -> float64 luma Y (H, W) in [16, 235], not rounded."""
    img = _check_uint8(img, "img")
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"rgb_to_y: expected an RGB image (H, W, 3), got shape {img.shape}")
    return img.astype(np.float64) / 255.0 @ _Y_WEIGHTS + 16.0


def gaussian_window(size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Normalised 1-D Gaussian (size,) float64, as OpenCV's ``getGaussianKernel``."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def _check_uint8(a, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype != np.uint8:
        raise TypeError(
            f"{name} must be uint8 (0-255); got {a.dtype}. Round float SR outputs with metrics.quantize first."
        )
    return a


def _prepare(img, ref, crop_border: int, test_y_channel: bool) -> tuple[np.ndarray, np.ndarray]:
    """Checks, Y conversion and border crop; returns float64 (h, w, c) pairs."""
    img, ref = _check_uint8(img, "img"), _check_uint8(ref, "ref")
    if img.shape != ref.shape:
        raise ValueError(f"image shapes differ: img {img.shape} vs ref {ref.shape}")
    if img.ndim == 2:
        img, ref = img[..., None], ref[..., None]
    if img.ndim != 3:
        raise ValueError(f"expected (H, W) or (H, W, C) images, got shape {img.shape}")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    if test_y_channel:
        if img.shape[2] != 3:
            raise ValueError(f"test_y_channel needs RGB (H, W, 3) images, got shape {img.shape}")
        a, b = rgb_to_y(img)[..., None], rgb_to_y(ref)[..., None]
    else:
        a, b = img.astype(np.float64), ref.astype(np.float64)
    if crop_border:
        a = a[crop_border:-crop_border, crop_border:-crop_border]
        b = b[crop_border:-crop_border, crop_border:-crop_border]
    if a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"crop_border={crop_border} leaves nothing of a {img.shape} image")
    return a, b


def psnr(img, ref, crop_border: int = 0, test_y_channel: bool = True) -> float:
    """PSNR (dB, float64, peak 255) of uint8 images (H, W, 3); ``inf`` when identical."""
    a, b = _prepare(img, ref, crop_border, test_y_channel)
    mse = np.mean((a - b) ** 2)
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(255.0**2 / mse))


def _filter_valid(x: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of (H, W) with the 1-D window ``g`` on both axes."""
    k = g.size
    h, w = x.shape
    rows = sum(g[i] * x[i : h - k + 1 + i] for i in range(k))
    return sum(g[i] * rows[:, i : w - k + 1 + i] for i in range(k))


def _ssim_plane(a: np.ndarray, b: np.ndarray, g: np.ndarray) -> float:
    mu_a, mu_b = _filter_valid(a, g), _filter_valid(b, g)
    mu_aa, mu_bb, mu_ab = mu_a * mu_a, mu_b * mu_b, mu_a * mu_b
    var_a = _filter_valid(a * a, g) - mu_aa
    var_b = _filter_valid(b * b, g) - mu_bb
    cov = _filter_valid(a * b, g) - mu_ab
    ssim_map = ((2 * mu_ab + _C1) * (2 * cov + _C2)) / ((mu_aa + mu_bb + _C1) * (var_a + var_b + _C2))
    return float(ssim_map.mean())


def ssim(img, ref, crop_border: int = 0, test_y_channel: bool = True) -> float:
    """SSIM of uint8 images (H, W, 3): Gaussian 11/1.5, 0-255 range, valid region, channel mean."""
    a, b = _prepare(img, ref, crop_border, test_y_channel)
    g = gaussian_window()
    if a.shape[0] < g.size or a.shape[1] < g.size:
        raise ValueError(f"SSIM needs at least {g.size}x{g.size} pixels after the border crop, got {a.shape[:2]}")
    return float(np.mean([_ssim_plane(a[..., c], b[..., c], g) for c in range(a.shape[2])]))


def sr_scores(sr, hr, scale: int) -> tuple[float, float]:
    """Protocol scores of an SR output against its HR.

    Args:
      sr: float (sH, sW, 3), nominally [0, 1] (clamped and rounded here), or uint8.
      hr: uint8 (sH, sW, 3), already cropped to the SR size.
      scale: the SR factor, used as ``crop_border``.

    Returns:
      (PSNR dB, SSIM) on the Y channel.
    """
    sr = np.asarray(sr)
    sr_u8 = sr if sr.dtype == np.uint8 else quantize(sr)
    return psnr(sr_u8, hr, scale), ssim(sr_u8, hr, scale)
