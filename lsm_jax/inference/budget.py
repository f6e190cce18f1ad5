"""Memory budget for inference: parse `--max-memory`, estimate a forward's peak, pick the tile side.

The estimate counts the float32 activations that are alive together at the peak of one forward, per
LR pixel (every part of LSM is linear in the pixel count: windows are local, the SMU scores each
token against T prototypes), times a safety factor for XLA's buffer reuse, plus the parameters and
the output image. It is checked against measured peak RSS in docs/inference.md.
"""

from __future__ import annotations

import math
import os
import re

__all__ = ["parse_size", "default_budget", "forward_bytes_per_pixel", "tile_for_budget", "format_size",
           "FIXED_BYTES", "whole_image_bytes"]

_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mb": 1 << 20,
          "mib": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30, "t": 1 << 40, "tb": 1 << 40,
          "tib": 1 << 40}
# The JAX runtime, compiled program and the rest of the process: measured about 0.85 GB of RSS on
# CPU for LSM-S after its first compile (jax 0.12); 0.56 GB before it.
FIXED_BYTES = 900 << 20
SAFETY = 1.5   # XLA keeps more than the minimal live set (fusions, layout copies).


def parse_size(text: str) -> int:
    """'4GB', '512M', '1.5GiB', '1000000' -> bytes (binary units; K/M/G/T with optional B/iB)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"cannot read the memory size {text!r} (e.g. 4GB, 512MB)")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if value <= 0:
        raise ValueError(f"memory size must be positive, got {text!r}")
    return int(value)


def format_size(n: float) -> str:
    """Bytes as a short human string (GiB/MiB)."""
    return f"{n / (1 << 30):.2f} GB" if n >= 1 << 30 else f"{n / (1 << 20):.0f} MB"


def default_budget(device=None) -> int:
    """Half of the accelerator's memory limit, or half of this machine's available RAM on CPU."""
    if device is not None and getattr(device, "platform", "cpu") != "cpu":
        try:
            stats = device.memory_stats() or {}
            if stats.get("bytes_limit"):
                return int(stats["bytes_limit"] * 0.8)
        except Exception:  # noqa: BLE001 - not every backend reports memory
            pass
    try:
        with open("/proc/meminfo") as fh:
            info = dict(line.split(":", 1) for line in fh)
        return int(info["MemAvailable"].split()[0]) * 1024 // 2
    except (OSError, KeyError, ValueError):
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")) // 2


def forward_bytes_per_pixel(cfg) -> float:
    """Estimated peak bytes per LR pixel of one forward of network config `cfg` (float32 activations)."""
    c = cfg.embed_dim
    s = int(cfg.upscale)
    s0, s1 = cfg.split_size
    heads = max(cfg.num_heads) // 2
    hidden = int(c * cfg.mlp_ratio)
    n = s0 * s1
    # Window attention: two branches × heads × n logits and their exponentials per token, plus
    # q/k/v, their padded and windowed copies and the residual stream (~12 C-wide tensors).
    attention = 2 * 2 * heads * n + 12 * c
    mlp = 5 * hidden + 4 * c
    cml = 4 * cfg.num_tokens + 8 * cfg.d_state + 10 * c
    if cfg.arch == "LSM":
        tail = 64 * (3 + 2 * s * s) + (4 * 64 * (s // 2) ** 2 if s == 4 else 0)
    else:
        tail = c * 2 + 3 * 3 * s * s
    per_pixel = max(attention, mlp, cml, tail) + 2 * c     # + the long skip and the group residual
    dtype_bytes = 4
    return SAFETY * dtype_bytes * per_pixel


def tile_for_budget(cfg, budget: int, *, align: int, image_hw: tuple[int, int] | None = None,
                    ensemble: int = 1, batch: int = 1, minimum: int | None = None) -> int:
    """Largest aligned LR tile side whose forward fits `budget` bytes.

    Subtracted first: the fixed overhead and, for an `image_hw` image, its float32 input and output
    (the whole output lives in memory while tiles are merged). Per tile pixel: the forward, plus
    `ensemble` float32 outputs kept for averaging; `batch` forwards run at once. Never below
    `minimum` (default `align`).
    """
    s = int(cfg.upscale)
    image = 0 if image_hw is None else image_hw[0] * image_hw[1] * 4 * 3 * (1 + 2 * s * s)
    per_px = forward_bytes_per_pixel(cfg) * batch + (ensemble * 4 * 3 * s * s if ensemble > 1 else 0)
    free = budget - FIXED_BYTES - image
    side = int(math.sqrt(free / per_px)) if free > 0 else 0
    side = (side // align) * align
    minimum = align if minimum is None else minimum
    return max(side, minimum)


def whole_image_bytes(cfg, h: int, w: int, ensemble: int = 1, batch: int = 1) -> float:
    """Estimated peak bytes of whole-image inference of an h×w LR image."""
    s = int(cfg.upscale)
    per_px = forward_bytes_per_pixel(cfg) * batch + (ensemble * 4 * 3 * s * s if ensemble > 1 else 0)
    return FIXED_BYTES + h * w * (per_px + 4 * 3 * (1 + 2 * s * s))
