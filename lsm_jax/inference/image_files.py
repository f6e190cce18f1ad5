"""Upscale image files with any `upscale_fn`: one image (gray, alpha and 16-bit kept) or a list of them.

``upscale_file`` / ``upscale_paths`` take any ``upscale_fn`` mapping float32 (H, W, C) in [0, 1] to float32
(sH, sW, C), so they run without a model in tests. C is 3, or 1 for a gray (``in_chans=1``) checkpoint, which
upscales gray images and refuses colour ones. The command is `lsm_jax.upscale`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
from tqdm import tqdm

from lsm_jax.inference.tiling import tiled
from lsm_jax.data.image_io import (
    ImageFileError, LoadedImage, read_image, write_png,
)
from lsm_jax.data.imresize import imresize
from lsm_jax.data.quantize import quantize

__all__ = ["UpscaleFn", "output_name", "resize_alpha", "tiled", "upscale_file", "upscale_image", "upscale_paths"]

UpscaleFn = Callable[[np.ndarray], np.ndarray]


def output_name(path: str | os.PathLike, scale: int) -> str:
    """File name of the result for ``path``: ``{stem}_x{scale}.png``."""
    return f"{Path(path).stem}_x{scale}.png"


def resize_alpha(alpha: np.ndarray, scale: int) -> np.ndarray:
    """Upscale an alpha plane (H, W) float in [0, 1] by ``scale`` with bicubic; float32 (sH, sW).

    Uses the MATLAB-style bicubic of ``lsm_jax.data.imresize`` (the same kernel the SR protocol makes
    its LR images with). Not clamped: callers clamp when quantising.
    """
    h, w = alpha.shape
    if alpha.min() == alpha.max():
        # Uniform alpha (typically an all-opaque RGBA file): exact, and skips a JAX compile.
        return np.full((h * scale, w * scale), alpha.flat[0], np.float32)
    out = np.asarray(imresize(np.asarray(alpha, np.float32), scale=scale), np.float32)
    if out.shape != (h * scale, w * scale):
        raise ValueError(f"alpha resize gave {out.shape}, expected {(h * scale, w * scale)}")
    return out


def upscale_image(img: LoadedImage, upscale_fn: UpscaleFn, scale: int, channels: int = 3,
                  as_float: bool = False) -> np.ndarray:
    """Run ``upscale_fn`` on ``img`` and return the pixels to write (uint8/uint16, (sH, sW, C)), or with
    ``as_float`` the same image before rounding: float32 in [0, 1].

    C is 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA), following the source. A gray source is
    fed to the network as R = G = B, and the three output channels are averaged back to one. The
    ideal output of a gray input is itself gray, so any weights summing to one agree on it; they
    only differ in how they combine the network's small per-channel deviations, and equal weights
    give the least variance. BT.601 luma weights would trust green twice as much as red for no
    reason: the input green carried no more information. A 1-channel model (``channels=1``) sees
    the gray plane itself. Samples are rounded by ``lsm_jax.data.quantize`` (the metrics' rule), so an
    8-bit result is the image that is scored.
    """
    h, w = img.rgb.shape[:2]
    if channels == 1 and not img.was_gray:
        raise ValueError("a colour image, but the checkpoint is a 1-channel (gray) model")
    sr = np.asarray(upscale_fn(img.rgb if channels == 3 else img.rgb[..., :1]), dtype=np.float32)
    if sr.shape != (h * scale, w * scale, channels):
        raise ValueError(f"the model returned shape {sr.shape}, expected {(h * scale, w * scale, channels)}")
    color = sr.mean(axis=2, dtype=np.float64, keepdims=True) if img.was_gray else sr
    planes = [color] if img.alpha is None else [color, resize_alpha(img.alpha, scale)[..., None]]
    if as_float:
        return np.concatenate([np.clip(p, 0.0, 1.0).astype(np.float32) for p in planes], axis=2)
    return np.concatenate([quantize(p, img.bit_depth) for p in planes], axis=2)


def upscale_file(
    path: str | os.PathLike, out_dir: str | os.PathLike, upscale_fn: UpscaleFn, scale: int,
    channels: int = 3,
) -> Path:
    """Upscale one image file into ``out_dir/{stem}_x{scale}.png``; returns the path written.

    Creates ``out_dir`` if needed. Raises ``ImageFileError`` if the file cannot be read, other
    exceptions for model or write errors.
    """
    img = read_image(path)
    out_path = Path(out_dir) / output_name(path, scale)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_png(out_path, upscale_image(img, upscale_fn, scale, channels))
    return out_path


def problem(exc: Exception) -> str:
    if isinstance(exc, ImageFileError):
        return exc.reason
    msg = str(exc).strip()
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def upscale_paths(
    paths: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    upscale_fn: UpscaleFn,
    scale: int,
    *,
    progress: bool = False,
    report: Callable[[str], None] | None = None,
    channels: int = 3,
) -> list[tuple[Path, str]]:
    """Upscale every file in ``paths`` into ``out_dir``; returns ``[(path, problem), ...]`` failures.

    A failing file does not stop the others. Each failure is also passed to ``report`` as one
    line ``"<path>: <problem>"`` as it happens (default: stderr, without breaking the tqdm bar).
    Two inputs that would write the same output name (``a.png`` and ``a.jpg``) are not allowed to
    overwrite each other: the later one fails. Names are compared case-insensitively, as they
    collide on macOS and Windows file systems.
    """
    paths = [Path(p) for p in paths]
    if report is None:

        def report(line: str) -> None:
            tqdm.write(line, file=sys.stderr)

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    failures: list[tuple[Path, str]] = []
    taken: dict[str, Path] = {}
    with tqdm(paths, desc="upscale", unit="img", disable=not progress, file=sys.stderr) as bar:
        for path in bar:
            name = output_name(path, scale)
            first = taken.setdefault(name.casefold(), path)
            try:
                if first is not path:
                    raise ValueError(f"output name {name} is already used by {first.name}; rename one")
                upscale_file(path, out_dir, upscale_fn, scale, channels)
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop a whole folder
                failures.append((path, problem(exc)))
                report(f"{path}: {failures[-1][1]}")
    return failures
