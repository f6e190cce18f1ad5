"""Image file I/O shared by evaluation, ``make_lr`` and the data pipeline.

Every failure raises :class:`ImageFileError` whose message names the file, so a
bad file in a folder of thousands can be found at once.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

__all__ = [
    "IMAGE_EXTENSIONS", "ImageFileError", "list_images", "read_image", "image_size",
    "write_png", "check_images",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm")


class ImageFileError(ValueError):
    """A file that is missing, cannot be decoded, or does not fit its pair."""


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly in ``folder`` (sorted by name); error if the folder is missing."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageFileError(f"{folder}: not a directory")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to RGB uint8 (H, W, 3); grey and palette images are expanded.

    16-bit images are reduced to 8 bits by PIL's mode conversion.
    """
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode != "RGB":
                im = im.convert("RGB")
            return np.asarray(im, dtype=np.uint8).copy()
    except FileNotFoundError:
        raise ImageFileError(f"{path}: file not found") from None
    except Exception as e:  # PIL raises several unrelated types for bad data
        raise ImageFileError(f"{path}: cannot decode image ({type(e).__name__}: {e})") from None


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(H, W) of an image file from its header, without decoding the pixels."""
    try:
        with Image.open(path) as im:
            w, h = im.size
            return h, w
    except FileNotFoundError:
        raise ImageFileError(f"{path}: file not found") from None
    except Exception as e:
        raise ImageFileError(f"{path}: cannot read image header ({type(e).__name__}: {e})") from None


def write_png(path: str | os.PathLike, img: np.ndarray) -> None:
    """Write uint8 RGB (H, W, 3) as PNG, creating parent folders."""
    img = np.asarray(img)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"{path}: expected uint8 (H, W, 3), got {img.dtype} {img.shape}")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, format="PNG")


def check_images(paths: Iterable[str | os.PathLike], threads: int = 8) -> dict[str, str]:
    """Decode every file; return ``{path: error message}`` for the bad ones (empty if all decode)."""
    def one(p):
        try:
            read_image(p)
            return None
        except ImageFileError as e:
            return str(e)

    paths = [str(p) for p in paths]
    with ThreadPoolExecutor(max(1, threads)) as ex:
        return {p: m for p, m in zip(paths, ex.map(one, paths)) if m is not None}
