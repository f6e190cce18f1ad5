"""Image files in and out: one listing, one decoder with two views, one PNG writer, one error.

- :func:`list_images` lists the image files of a folder (``IMAGE_EXTENSIONS``, any case, hidden
  files such as macOS ``._x.png`` skipped).
- :func:`read_rgb8` is the **protocol** view, for evaluation, training and ``make_lr``: uint8 RGB
  (H, W, 3). Gray is replicated, alpha dropped, 16-bit samples scaled by round(v / 257).
- :func:`read_image` is the **full-fidelity** view, for ``upscale``: float32 RGB plus alpha, bit
  depth and gray-ness, so the result can be written back in kind. :func:`image_from_array` and
  :func:`image_from_pillow` give the same view of in-memory images (the Python API).
- :func:`write_png` writes uint8/uint16 gray, gray+alpha, RGB or RGBA PNGs atomically.

Both views share one decoder. EXIF orientation is applied there, for every caller: phone photos
are stored sideways with a tag saying so, and the PNGs written here carry no tag; benchmark files
have no tag, so protocol scores are unaffected, and LR made by ``make_lr`` from a tagged photo
matches the rotated HR. :func:`image_size` reports the same, rotated, size from the header.

Codecs: Pillow for everything except 16-bit PNGs (Pillow drops their low byte) and deep TIFFs
(Pillow truncates their colour samples). 16-bit PNGs, and every PNG written, go through libpng via
``imagecodecs``; deep TIFFs through ``tifffile`` (which uses ``imagecodecs`` for compressed pages).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, NamedTuple

import imagecodecs
import numpy as np
from PIL import Image, UnidentifiedImageError

from lsm_jax.data.quantize import quantize

__all__ = ["IMAGE_EXTENSIONS", "ImageFileError", "LoadedImage", "list_images", "read_rgb8", "read_image",
           "image_from_array", "image_from_pillow", "image_size", "check_images", "write_png"]

IMAGE_EXTENSIONS = (".bmp", ".jpeg", ".jpg", ".png", ".ppm", ".tif", ".tiff", ".webp")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF


class ImageFileError(ValueError):
    """A file or folder that is missing, cannot be decoded, or does not fit its pair.

    ``str()`` is ``"<path>: <reason>"``; ``path`` and ``reason`` are kept for one-line reports.
    """

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class LoadedImage(NamedTuple):
    """An image as the network sees it, plus what is needed to write the result back in kind.

    ``rgb`` is float32 (H, W, 3) in [0, 1] (gray sources replicated to three channels), ``alpha``
    float32 (H, W) in [0, 1] or None, ``bit_depth`` 8 or 16, ``was_gray`` True for single-channel
    sources (L, LA, I;16, 1-bit, gray palettes, ...).
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    bit_depth: int
    was_gray: bool


class _Pixels(NamedTuple):
    """Decoded samples (H, W, C), C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA; uint8, uint16 or float32
    with full scale ``maxval``; ``gray_hint`` for palettes whose colours are all gray."""

    data: np.ndarray
    maxval: float
    gray_hint: bool


# Listing


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder`` (no recursion), sorted by name.

    Extensions match ``IMAGE_EXTENSIONS`` case-insensitively. Hidden files are skipped: macOS
    ``._name.png`` resource forks carry an image extension but are not images. Raises
    ``ImageFileError`` if ``folder`` is not a directory.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageFileError(folder, "not a directory")
    return sorted(
        p for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    )


# The two views


def read_rgb8(path: str | os.PathLike) -> np.ndarray:
    """Decode to uint8 RGB (H, W, 3) for the SR protocol (evaluation, training, ``make_lr``).

    Gray is replicated to three channels and alpha is dropped (not composited). 16-bit samples
    become round(v / 257), the nearest 8-bit level (65535 -> 255, 4000 -> 16); float TIFFs are
    quantised like model outputs. Raises ``ImageFileError`` naming the file.
    """
    px = _decode(Path(path))
    a = px.data
    color = a[..., :3] if a.shape[2] >= 3 else a[..., :1]
    if a.dtype == np.uint16:
        # round(v / 257) in integers: v / 257 is never exactly k + 1/2, so no tie rule is needed.
        color = ((color.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif a.dtype != np.uint8:
        color = quantize(np.nan_to_num(color / np.float32(px.maxval)), 8)
    if color.shape[2] == 1:
        color = np.repeat(color, 3, axis=2)
    return np.ascontiguousarray(color)


def read_image(path: str | os.PathLike) -> LoadedImage:
    """Decode at full fidelity for ``upscale`` (gray, alpha, 16-bit, palette kept apart).

    Multi-frame files give their first frame. Raises ``ImageFileError`` naming the file.
    """
    path = Path(path)
    px = _decode(path)
    if 0 in px.data.shape[:2]:
        raise ImageFileError(path, f"empty image {px.data.shape[:2]}")
    return _loaded(px)


def _loaded(px: _Pixels) -> LoadedImage:
    x = px.data.astype(np.float32) / np.float32(px.maxval)
    if np.issubdtype(px.data.dtype, np.floating):
        x = np.clip(np.nan_to_num(x), 0.0, 1.0)
    c = x.shape[2]
    alpha = np.ascontiguousarray(x[..., -1]) if c in (2, 4) else None
    rgb = np.repeat(x[..., :1], 3, axis=2) if c <= 2 else np.ascontiguousarray(x[..., :3])
    bit_depth = 8 if px.data.dtype == np.uint8 else 16
    return LoadedImage(rgb, alpha, bit_depth, c <= 2 or px.gray_hint)


def image_from_array(samples: np.ndarray) -> LoadedImage:
    """An in-memory (H, W) or (H, W, C) image (C: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) as `read_image` gives
    a file: uint8 is 0-255, uint16 0-65535, floats [0, 1]; other dtypes are a ValueError."""
    a = np.asarray(samples)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4) or 0 in a.shape[:2]:
        raise ValueError(f"expected an (H, W) or (H, W, C) image with C in 1..4, got shape {np.shape(samples)}")
    if a.dtype == np.uint8:
        maxval = 255.0
    elif a.dtype == np.uint16:
        maxval = 65535.0
    elif np.issubdtype(a.dtype, np.floating):
        a, maxval = a.astype(np.float32), 1.0
    else:
        raise ValueError(f"a {a.dtype} array: pass uint8 or uint16 samples, or floats in [0, 1]")
    return _loaded(_Pixels(a, maxval, False))


def image_from_pillow(im: Image.Image) -> LoadedImage:
    """A PIL image as `read_image` would decode its file (modes, palettes, colour keys, EXIF rotation)."""
    px = _pixels_of_pillow(im)
    if 0 in px.data.shape[:2]:
        raise ValueError(f"empty image {px.data.shape[:2]}")
    return _loaded(px)


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(H, W) as the readers return it (EXIF rotation included), from the header where possible."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            w, h = im.size
            return (w, h) if _orientation(im) >= 5 else (h, w)
    except FileNotFoundError:
        raise ImageFileError(path, "no such file") from None
    except Exception:  # noqa: BLE001 - e.g. a 16-bit gray+alpha TIFF Pillow cannot open: decode it
        return _decode(path).data.shape[:2]


def check_images(paths: Iterable[str | os.PathLike], threads: int = 8) -> dict[str, str]:
    """Decode every file; return ``{path: error message}`` for the bad ones (empty if all decode)."""

    def one(p: str) -> str | None:
        try:
            _decode(Path(p))
            return None
        except ImageFileError as e:
            return str(e)

    paths = [str(p) for p in paths]
    with ThreadPoolExecutor(max(1, threads)) as ex:
        return {p: m for p, m in zip(paths, ex.map(one, paths)) if m is not None}


# The decoder


def _decode(path: Path) -> _Pixels:
    """Pixels of the first frame with EXIF orientation applied; errors become ImageFileError."""
    try:
        with open(path, "rb") as f:
            head = f.read(33)
        if head.startswith(_PNG_SIGNATURE) and head[12:16] == b"IHDR" and head[24:25] == b"\x10":
            px = _read_png16(path)
        elif head[:4] in _TIFF_SIGNATURES and (_tiff_bits(path) or 0) > 8:
            px = _read_deep_tiff(path)
        else:
            px = _read_with_pillow(path)
        if px.data.ndim != 3 or px.data.shape[2] not in (1, 2, 3, 4):
            raise ValueError(f"unsupported pixel layout {px.data.shape}")
        return px
    except ImageFileError:
        raise
    except UnidentifiedImageError:
        raise ImageFileError(path, "cannot decode (not a recognised image file)") from None
    except FileNotFoundError:
        raise ImageFileError(path, "no such file") from None
    except IsADirectoryError:
        raise ImageFileError(path, "is a directory") from None
    except Exception as exc:  # noqa: BLE001 - decoders raise anything on corrupt data
        msg = str(exc).strip()
        why = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
        raise ImageFileError(path, f"cannot decode ({why})") from None


def _orientation(im: Image.Image) -> int:
    """EXIF orientation 1..8 from what the header holds (1 if absent or broken).

    A PNG's eXIf chunk placed after the image data is not looked for: finding it would mean
    decoding the pixels, and ``image_size`` must agree with the readers from the header alone.
    """
    try:
        if im.format == "PNG" and "exif" not in im.info:
            return 1
        o = int(im.getexif().get(0x0112, 1))
        return o if 1 <= o <= 8 else 1
    except Exception:  # noqa: BLE001 - a broken EXIF block must not make the pixels unreadable
        return 1


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation 1..8 to an (H, W, ...) array, as ``ImageOps.exif_transpose`` does."""
    if orientation == 2:
        a = a[:, ::-1]
    elif orientation == 3:
        a = a[::-1, ::-1]
    elif orientation == 4:
        a = a[::-1]
    elif orientation == 5:
        a = a.swapaxes(0, 1)
    elif orientation == 6:
        a = np.rot90(a, -1)
    elif orientation == 7:
        a = a[::-1, ::-1].swapaxes(0, 1)
    elif orientation == 8:
        a = np.rot90(a, 1)
    return np.ascontiguousarray(a)


def _read_with_pillow(path: Path) -> _Pixels:
    with Image.open(path) as im:
        return _pixels_of_pillow(im)


def _pixels_of_pillow(im: Image.Image) -> _Pixels:
    orientation = _orientation(im)
    im.load()
    mode = im.mode
    transparency = im.info.get("transparency")
    gray_hint = False
    if mode == "1":
        im = im.convert("L")
    elif mode in ("La", "PA"):
        im = im.convert("LA" if mode == "La" else "RGBA")
    elif mode == "RGBa":
        im = im.convert("RGBA")
    elif mode == "P":
        im = im.convert("RGBA" if transparency is not None else "RGB")
        # A palette of grays (common in scanned documents) should come back gray.
        arr = np.asarray(im)
        gray_hint = bool(np.all(arr[..., 0:1] == arr[..., 1:3]))
    elif mode in ("L", "RGB") and transparency is not None and not isinstance(transparency, bytes):
        im = im.convert("LA" if mode == "L" else "RGBA")  # tRNS colour key -> real alpha
    elif mode not in ("L", "LA", "RGB", "RGBA", "F", "I") and not mode.startswith("I;16"):
        im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, ...
    arr = np.array(im)  # a copy: callers may write into it
    mode = im.mode
    if mode.startswith("I;16"):
        arr, maxval = arr.astype(np.uint16), 65535.0
    elif mode == "I":
        # 32-bit integer samples come from 16-bit sources (old Pillow PNGs, some TIFFs).
        arr, maxval = np.clip(arr, 0, 65535).astype(np.uint16), 65535.0
    elif mode == "F":
        arr, maxval = arr.astype(np.float32), 1.0
    else:
        arr, maxval = arr.astype(np.uint8, copy=False), 255.0
    if arr.ndim == 2:
        arr = arr[..., None]
    return _Pixels(_orient(arr, orientation), maxval, gray_hint)


def _read_png16(path: Path) -> _Pixels:
    data = path.read_bytes()
    with Image.open(path) as im:  # the container and any eXIf chunk, without decoding pixels
        orientation = _orientation(im)
    arr = imagecodecs.png_decode(data)  # libpng: all 16 bits, Adam7, tRNS colour key -> alpha
    if arr.dtype != np.uint16:
        raise ValueError(f"16-bit PNG decoded as {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[..., None]
    return _Pixels(_orient(arr, orientation), 65535.0, False)


def _tiff_bits(path: Path) -> int | None:
    """Largest BitsPerSample of the first TIFF page, or None (unreadable: Pillow decides)."""
    try:
        import tifffile  # installed with scikit-image

        with tifffile.TiffFile(path) as tf:
            return int(tf.pages.first.bitspersample)
    except Exception:  # noqa: BLE001 - let Pillow give the verdict on odd files
        return None


def _read_deep_tiff(path: Path) -> _Pixels:
    """16-bit (or float) TIFFs, whose colour samples Pillow would truncate to 8 bits."""
    try:
        with Image.open(path) as im:
            if im.mode.startswith("I;16"):  # gray 16 is fine in Pillow, whatever the compression
                return _read_with_pillow(path)
    except Exception:  # noqa: BLE001 - e.g. 16-bit gray+alpha, which Pillow cannot open
        pass
    import tifffile

    with tifffile.TiffFile(path) as tf:
        page = tf.pages.first
        arr = page.asarray()
        photometric = int(page.photometric)
        planar_separate = int(page.planarconfig) == 2
        extras = tuple(int(e) for e in (page.extrasamples or ()))
        orientation = int(page.tags.valueof(274, 1))
    if planar_separate and arr.ndim == 3:
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3:
        raise ValueError(f"unsupported TIFF layout {arr.shape}")
    if arr.dtype == np.uint16:
        maxval = 65535.0
    elif np.issubdtype(arr.dtype, np.floating):
        arr, maxval = arr.astype(np.float32), 1.0
    else:
        raise ValueError(f"unsupported TIFF sample type {arr.dtype}")
    if photometric not in (0, 1, 2):  # MINISWHITE, MINISBLACK, RGB
        raise ValueError(f"unsupported TIFF photometric interpretation {photometric}")
    base = 3 if photometric == 2 else 1
    arr = arr[..., : base + (1 if extras else 0)]
    if photometric == 0:
        arr[..., :1] = (maxval - arr[..., :1]).astype(arr.dtype)
    if extras and extras[0] == 1 and arr.shape[2] == base + 1:
        # Associated (premultiplied) alpha: undo it so colour and alpha are resized independently.
        a = arr[..., -1:].astype(np.float64)
        c = arr[..., :-1].astype(np.float64) * maxval / np.maximum(a, 1e-12)
        c = np.where(a > 0, np.clip(c, 0, maxval), 0)
        arr[..., :-1] = np.rint(c).astype(arr.dtype) if arr.dtype == np.uint16 else c
    return _Pixels(_orient(arr, orientation if 1 <= orientation <= 8 else 1), maxval, False)


# Writing


def write_png(path: str | os.PathLike, pixels: np.ndarray) -> None:
    """Write uint8/uint16 pixels (H, W) or (H, W, C), C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA.

    The bit depth follows the dtype; libpng (via ``imagecodecs``) writes all 16 bits, and the bytes
    depend only on the pixels (no timestamps). Parent folders are created. The file is written
    under a temporary name and renamed into place, so an interrupted run never leaves a
    half-written PNG.
    """
    path = Path(path)
    a = np.asarray(pixels)
    if a.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"{path}: PNG pixels must be uint8 or uint16, got {a.dtype}")
    if not (a.ndim == 2 or (a.ndim == 3 and a.shape[2] in (1, 2, 3, 4))) or 0 in a.shape[:2]:
        raise ValueError(f"{path}: expected (H, W) or (H, W, 1..4) pixels, got {a.shape}")
    data = imagecodecs.png_encode(np.ascontiguousarray(a))
    path.parent.mkdir(parents=True, exist_ok=True)
    # A plain open() (not mkstemp, which makes 0600 files) so the result gets the umask's mode.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
