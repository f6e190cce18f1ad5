"""The one float -> integer sample rule: what is scored is exactly what is written.

``quantize(x, bits)`` clamps float samples to [0, 1], multiplies by 255 (or 65535) **in float32**
and rounds half to even (``np.round``). This is BasicSR's ``tensor2img`` for 8 bits, so the
metrics score the protocol's uint8 image, and ``upscale`` writes that same image: rounding the
float64 product instead disagrees on values whose float32 product lands on a different side of
k + 0.5 (18 Set5 samples at x2 did, by one level). 16-bit output uses the same rule with 65535;
float32 holds v / 65535 accurately enough that every 16-bit value survives the round trip.
"""

from __future__ import annotations

import numpy as np

__all__ = ["quantize", "MAX_VALUE"]

MAX_VALUE = {8: 255, 16: 65535}


def quantize(x, bits: int = 8) -> np.ndarray:
    """Float samples (any shape), nominally in [0, 1] -> uint8 (bits 8) or uint16 (bits 16).

    Clamp, float32 product with 255 / 65535, round half to even. Raises ValueError on NaN or inf:
    a model that produces them is broken, and black pixels (or a PSNR) would hide it.
    """
    if bits not in MAX_VALUE:
        raise ValueError(f"quantize: bits must be 8 or 16, got {bits}")
    a = np.asarray(x, dtype=np.float32)
    if not np.all(np.isfinite(a)):
        raise ValueError("quantize: non-finite values (NaN or inf) in the image")
    product = np.clip(a, np.float32(0.0), np.float32(1.0)) * np.float32(MAX_VALUE[bits])
    return np.round(product).astype(np.uint8 if bits == 8 else np.uint16)
