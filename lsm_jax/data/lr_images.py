"""MATLAB-bicubic LR images of HR images (the command is `lsm_jax.make_lr`).

Writes ``{stem}x{S}.png`` for every image in ``--hr`` (BasicSR/SwinIR/DIV2K
layout). As in the scripts that made the benchmark sets, each HR is first
cropped to a multiple of S (``modcrop``) and then downscaled by 1/S with
:func:`lsm_jax.data.imresize.imresize` on uint8, so the LR is exactly HR/S.
Bad files are reported and skipped; the exit status is non-zero if any.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lsm_jax.data.image_io import IMAGE_EXTENSIONS, ImageFileError, list_images, read_rgb8, write_png
from lsm_jax.data.imresize import imresize, modcrop

__all__ = ["make_lr_image",  "make_lr_folder"]


def make_lr_image(hr: np.ndarray, scale: int) -> np.ndarray:
    """uint8 HR (H, W, 3) -> uint8 LR (H // scale, W // scale, 3), MATLAB bicubic after modcrop."""
    hr = modcrop(np.asarray(hr), scale)
    if hr.shape[0] < 1 or hr.shape[1] < 1:
        raise ValueError(f"image smaller than the scale {scale}")
    return np.asarray(imresize(hr, 1.0 / scale))


def make_lr_folder(
    hr_dir: str | Path, scale: int, out_dir: str | Path, *, overwrite: bool = True, progress: bool = True
) -> tuple[int, list[str]]:
    """Write ``{stem}x{scale}.png`` into ``out_dir`` for each image of ``hr_dir``.

    Returns (number written, error messages for the files that failed).
    """
    paths = list_images(hr_dir)
    if not paths:
        raise ImageFileError(hr_dir, f"no image files ({' '.join(IMAGE_EXTENSIONS)})")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []
    written = 0

    def save(job):
        dst, lr = job
        write_png(dst, lr)

    # PNG encoding overlaps with the next resize on a second thread.
    with ThreadPoolExecutor(1) as ex:
        pending = []
        for p in tqdm(paths, desc=f"make_lr x{scale}", unit="img", disable=not progress):
            dst = out_dir / f"{p.stem}x{scale}.png"
            if not overwrite and dst.exists():
                continue
            try:
                lr = make_lr_image(read_rgb8(p), scale)
            except ImageFileError as e:
                errors.append(str(e))
                continue
            except ValueError as e:
                errors.append(f"{p}: {e}")
                continue
            pending.append((p, ex.submit(save, (dst, lr))))
        for p, fut in pending:
            try:
                fut.result()
                written += 1
            except Exception as e:
                errors.append(f"{p}: cannot write LR ({e})")
    return written, errors
