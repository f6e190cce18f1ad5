"""Image files in and out for the ``upscale`` command.

Reading gives float32 RGB in [0, 1] plus the facts needed to write the result back in kind: the
alpha channel (or None), the bit depth (8 or 16) and whether the source was grayscale. Writing
produces PNGs at 8 or 16 bits, gray or RGB, with or without alpha.

Pillow does most of the reading, but it silently drops the low byte of 16-bit colour PNGs and
TIFFs and cannot write 16-bit colour PNGs at all, so this module carries a small PNG codec of its
own (non-palette, 8/16-bit, Adam7 read support) and hands deep TIFFs to ``tifffile`` (installed
with scikit-image).
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image, UnidentifiedImageError

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageReadError",
    "LoadedImage",
    "decode_png",
    "encode_png",
    "list_image_files",
    "read_image",
    "to_uint",
    "write_png",
]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TIFF_SIGNATURES = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")  # classic and BigTIFF
_PNG_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel (no palette)
_CHANNELS_TO_COLOR_TYPE = {1: 0, 2: 4, 3: 2, 4: 6}
# (x0, y0, dx, dy) of the seven Adam7 passes.
_ADAM7 = (
    (0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2),
)
_IDAT_CHUNK = 1 << 20


class ImageReadError(Exception):
    """An image file could not be read; ``str()`` is ``"<path>: <reason>"``."""

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


# ---------------------------------------------------------------------------------------------
# Folder listing


def list_image_files(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder`` (no recursion), sorted by name.

    Matches ``IMAGE_EXTENSIONS`` case-insensitively. Hidden files are skipped: macOS "._name.png"
    resource forks carry an image extension but are not images.
    """
    return sorted(
        p
        for p in Path(folder).iterdir()
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    )


# ---------------------------------------------------------------------------------------------
# Reading


def read_image(path: str | os.PathLike) -> LoadedImage:
    """Read an image file into a ``LoadedImage``; raises ``ImageReadError`` naming the path.

    EXIF orientation is applied, because the PNG written back carries no orientation tag and
    should look the way viewers showed the input. Multi-frame files give their first frame.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(33)
        if head.startswith(_PNG_SIGNATURE) and head[12:16] == b"IHDR" and head[24:25] == b"\x10":
            pixels, maxval, gray_hint = _read_png16(path)
        elif head[:4] in _TIFF_SIGNATURES and (_tiff_bits(path) or 0) > 8:
            pixels, maxval, gray_hint = _read_deep_tiff(path)
        else:
            pixels, maxval, gray_hint = _read_with_pillow(path)
        return _to_loaded(pixels, maxval, gray_hint)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(path, "not a recognised image file") from None
    except FileNotFoundError:
        raise ImageReadError(path, "no such file") from None
    except Exception as exc:  # noqa: BLE001 - decoders raise anything on corrupt data
        raise ImageReadError(path, _describe(exc)) from exc


def _describe(exc: BaseException) -> str:
    msg = str(exc).strip()
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def _to_loaded(pixels: np.ndarray, maxval: float, gray_hint: bool) -> LoadedImage:
    """(H, W, C) integer or float samples -> LoadedImage (C: 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA)."""
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 2, 3, 4) or 0 in pixels.shape[:2]:
        raise ValueError(f"unsupported pixel layout {pixels.shape}")
    x = pixels.astype(np.float32) / np.float32(maxval)
    if np.issubdtype(pixels.dtype, np.floating):
        x = np.clip(np.nan_to_num(x), 0.0, 1.0)
    c = x.shape[2]
    color = x[..., : 3 if c >= 3 else 1]
    alpha = np.ascontiguousarray(x[..., -1]) if c in (2, 4) else None
    was_gray = c <= 2 or gray_hint
    rgb = np.repeat(color[..., :1], 3, axis=2) if c <= 2 else np.ascontiguousarray(color)
    bit_depth = 8 if pixels.dtype == np.uint8 else 16
    return LoadedImage(rgb, alpha, bit_depth, was_gray)


def _exif_orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1))
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


def _read_with_pillow(path: Path) -> tuple[np.ndarray, float, bool]:
    with Image.open(path) as im:
        orientation = _exif_orientation(im)
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
        arr = np.asarray(im)
        mode = im.mode
    if mode.startswith("I;16"):
        arr, maxval = arr.astype(np.uint16), 65535.0
    elif mode == "I":
        # 32-bit integer samples come from 16-bit sources (old Pillow PNGs, some TIFFs).
        arr, maxval = np.clip(arr, 0, 65535).astype(np.uint16), 65535.0
    elif mode == "F":
        arr, maxval = arr.astype(np.float32), 1.0
    else:
        arr, maxval = arr.astype(np.uint8), 255.0
    if arr.ndim == 2:
        arr = arr[..., None]
    return _orient(arr, orientation), maxval, gray_hint


def _read_png16(path: Path) -> tuple[np.ndarray, float, bool]:
    # Pillow still parses the file first: it validates the container and finds any eXIf chunk.
    with Image.open(path) as im:
        orientation = _exif_orientation(im)
    pixels = decode_png(path.read_bytes())
    return _orient(pixels, orientation), 65535.0, False


def _tiff_bits(path: Path) -> int | None:
    """Largest BitsPerSample of the first TIFF page, or None (tifffile missing or unreadable)."""
    try:
        import tifffile
    except ImportError:
        return None
    try:
        with tifffile.TiffFile(path) as tf:
            return int(tf.pages.first.bitspersample)
    except Exception:  # noqa: BLE001 - let Pillow give the verdict on odd files
        return None


def _read_deep_tiff(path: Path) -> tuple[np.ndarray, float, bool]:
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
        try:
            arr = page.asarray()
        except KeyError as exc:  # tifffile's way of saying a codec is missing
            raise ValueError(f"{exc.args[0]} (pip install imagecodecs)") from None
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
    return _orient(arr, orientation), maxval, False


# ---------------------------------------------------------------------------------------------
# PNG codec (non-palette, 8 or 16 bits per sample)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """PNG Paeth predictor on int16 arrays (ties: a, then b, then c)."""
    pa = np.abs(b - c)
    pb = np.abs(a - c)
    pc = np.abs(a + b - 2 * c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _filter_rows(raw: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    """Filter a block of rows (R, stride) uint8; returns (R, 1 + stride) with the type byte.

    Picks each row's filter by the minimum sum of absolute signed residuals, libpng's heuristic.
    """
    x = raw.astype(np.int16)
    up = np.concatenate([prev[None].astype(np.int16), x[:-1]], axis=0)
    left = np.zeros_like(x)
    left[:, bpp:] = x[:, :-bpp]
    upleft = np.zeros_like(x)
    upleft[:, bpp:] = up[:, :-bpp]
    candidates = np.stack(
        [x, x - left, x - up, x - ((left + up) >> 1), x - _paeth(left, up, upleft)]
    ).astype(np.uint8)  # wraps mod 256, as PNG requires
    cost = np.abs(candidates.view(np.int8).astype(np.int32)).sum(axis=2)
    best = np.argmin(cost, axis=0)
    rows = candidates[best, np.arange(raw.shape[0])]
    return np.concatenate([best.astype(np.uint8)[:, None], rows], axis=1)


def encode_png(pixels: np.ndarray, compress_level: int = 6) -> bytes:
    """Encode uint8/uint16 pixels (H, W) or (H, W, C), C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA.

    The bit depth follows the dtype. Output bytes depend only on the pixels (no timestamps).
    """
    a = np.asarray(pixels)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in _CHANNELS_TO_COLOR_TYPE or 0 in a.shape[:2]:
        raise ValueError(f"encode_png: expected (H, W) or (H, W, 1..4) pixels, got {a.shape}")
    if a.dtype not in (np.uint8, np.uint16):
        raise TypeError(f"encode_png: expected uint8 or uint16, got {a.dtype}")
    h, w, c = a.shape
    depth = 8 * a.dtype.itemsize
    bpp = c * a.dtype.itemsize
    big_endian = np.ascontiguousarray(a.astype(a.dtype.newbyteorder(">")))  # PNG byte order
    raw = big_endian.view(np.uint8).reshape(h, w * bpp)
    comp = zlib.compressobj(compress_level)
    parts = []
    prev = np.zeros(w * bpp, np.uint8)
    block = max(1, (1 << 22) // (w * bpp))  # bound the five filter candidates' memory
    for i in range(0, h, block):
        rows = raw[i : i + block]
        parts.append(comp.compress(_filter_rows(rows, prev, bpp).tobytes()))
        prev = rows[-1]
    parts.append(comp.flush())
    data = b"".join(parts)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, _CHANNELS_TO_COLOR_TYPE[c], 0, 0, 0)
    idat = b"".join(
        _chunk(b"IDAT", data[i : i + _IDAT_CHUNK]) for i in range(0, max(len(data), 1), _IDAT_CHUNK)
    )
    return _PNG_SIGNATURE + _chunk(b"IHDR", ihdr) + idat + _chunk(b"IEND", b"")


def _unfilter(data: np.ndarray, h: int, w: int, bpp: int) -> np.ndarray:
    """Undo PNG filtering of h rows of (1 + w*bpp) bytes; returns (h, w, bpp) uint8.

    Pixel (r, x) depends on (r, x-1), (r-1, x) and (r-1, x-1), so every anti-diagonal r + x = d
    can be reconstructed at once from the previous two: h + w - 1 vectorised steps instead of a
    Python loop over every pixel of the Average and Paeth rows.
    """
    rows = data.reshape(h, 1 + w * bpp)
    ftype = rows[:, 0]
    if ftype.size and ftype.max() > 4:
        raise ValueError(f"invalid PNG filter type {int(ftype.max())}")
    raw = rows[:, 1:].reshape(h, w, bpp).astype(np.int16)
    if not np.any(ftype):
        return raw.astype(np.uint8)
    rec = np.zeros((h + 1, w + 1, bpp), np.int16)  # zero row/column = PNG's out-of-image bytes
    ft = ftype.astype(np.int16)[:, None]
    for d in range(h + w - 1):
        r = np.arange(max(0, d - w + 1), min(h - 1, d) + 1)
        x = d - r
        a = rec[r + 1, x]
        b = rec[r, x + 1]
        c = rec[r, x]
        f = ft[r]
        pred = np.where(f == 4, _paeth(a, b, c), 0)
        pred = np.where(f == 3, (a + b) >> 1, pred)
        pred = np.where(f == 2, b, pred)
        pred = np.where(f == 1, a, pred)
        rec[r + 1, x + 1] = (raw[r, x] + pred) & 0xFF
    return rec[1:, 1:].astype(np.uint8)


def decode_png(data: bytes) -> np.ndarray:
    """Decode an 8- or 16-bit non-palette PNG to uint8/uint16 (H, W, C), C as in ``encode_png``.

    A tRNS colour key becomes an alpha channel. Chunk CRCs are checked so that corrupt files fail
    loudly. Palette and 1/2/4-bit PNGs are Pillow's business and raise ValueError here.
    """
    if not data.startswith(_PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    pos, ihdr, trns, idat = len(_PNG_SIGNATURE), None, None, []
    while pos < len(data):
        if pos + 8 > len(data):
            raise ValueError("truncated PNG chunk header")
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        crc = data[pos + 8 + length : pos + 12 + length]
        if len(body) != length or len(crc) != 4:
            raise ValueError(f"truncated PNG chunk {kind.decode('latin-1')!r}")
        if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body):
            raise ValueError(f"CRC mismatch in PNG chunk {kind.decode('latin-1')!r}")
        pos += 12 + length
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"tRNS":
            trns = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if ihdr is None or not idat:
        raise ValueError("PNG without IHDR or IDAT")
    w, h, depth, ctype, _, _, interlace = ihdr
    if depth not in (8, 16) or ctype not in _PNG_CHANNELS:
        raise ValueError(f"decode_png reads 8/16-bit non-palette PNGs, not depth {depth} type {ctype}")
    if w == 0 or h == 0 or w * h > 2 * (Image.MAX_IMAGE_PIXELS or 2**62):
        raise ValueError(f"unreasonable PNG size {w}x{h}")
    chans = _PNG_CHANNELS[ctype]
    nbytes = depth // 8
    bpp = chans * nbytes
    passes = [(0, 0, 1, 1)] if interlace == 0 else list(_ADAM7)
    sizes = [(-(-(h - y0) // dy), -(-(w - x0) // dx)) for x0, y0, dx, dy in passes]
    need = sum(ph * (1 + pw * bpp) for ph, pw in sizes if ph > 0 and pw > 0)
    dec = zlib.decompressobj()
    stream = dec.decompress(b"".join(idat), need)  # bounded: a zip bomb cannot blow up memory
    if len(stream) < need:
        raise ValueError(f"truncated PNG image data ({len(stream)} of {need} bytes)")
    buf = np.frombuffer(stream, np.uint8)
    out = np.zeros((h, w, bpp), np.uint8)
    off = 0
    for (x0, y0, dx, dy), (ph, pw) in zip(passes, sizes):
        if ph <= 0 or pw <= 0:
            continue  # empty Adam7 pass: no bytes at all, not even filter types
        n = ph * (1 + pw * bpp)
        out[y0::dy, x0::dx] = _unfilter(buf[off : off + n], ph, pw, bpp)
        off += n
    pixels = out.view(">u2").astype(np.uint16) if nbytes == 2 else out
    if trns is not None and ctype in (0, 2):
        key = np.frombuffer(trns[: 2 * chans], ">u2").astype(np.int64)
        if depth == 8:
            key = key & 0xFF
        if key.size == chans:
            opaque = np.iinfo(pixels.dtype).max
            hit = np.all(pixels == key.astype(pixels.dtype), axis=2, keepdims=True)
            pixels = np.concatenate([pixels, np.where(hit, 0, opaque).astype(pixels.dtype)], axis=2)
    return pixels


# ---------------------------------------------------------------------------------------------
# Writing


def to_uint(x: np.ndarray, bit_depth: int) -> np.ndarray:
    """Clamp float samples to [0, 1] and round to nearest (ties to even) at 8 or 16 bits.

    Raises ValueError on NaN/inf: a model that produces them is broken, and writing black pixels
    would hide it.
    """
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16, got {bit_depth}")
    x = np.asarray(x, np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError("non-finite values (NaN or inf) in the output")
    maxval = 255 if bit_depth == 8 else 65535
    return np.rint(np.clip(x, 0.0, 1.0) * maxval).astype(np.uint8 if bit_depth == 8 else np.uint16)


def write_png(path: str | os.PathLike, pixels: np.ndarray) -> None:
    """Write uint8/uint16 pixels (see ``encode_png``) to ``path`` as PNG.

    The file is written under a temporary name and renamed into place, so an interrupted run
    never leaves a half-written PNG behind.
    """
    path = Path(path)
    data = encode_png(pixels)
    # A plain open() (not mkstemp, which makes 0600 files) so the result gets the umask's mode.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
