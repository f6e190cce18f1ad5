"""lsm_jax.data.image_io and quantize: listing, the two readers, EXIF, 16-bit, PNG writing."""

from __future__ import annotations

import imagecodecs
import numpy as np
import pytest
from PIL import Image

from fixture_png import plain_png, rng_img
from lsm_jax.data.image_io import (
    IMAGE_EXTENSIONS, ImageFileError, image_size, list_images, read_image, read_rgb8, write_png,
)
from lsm_jax.data.quantize import quantize
from lsm_jax.evaluation.scoring import find_pairs

# 16-bit samples around the rounding points of v / 257, and the 4000 and 8000.
DEEP = np.array([0, 128, 129, 385, 386, 4000, 8000, 32767, 32896, 65407, 65408, 65535], np.uint16)


def test_list_images_one_extension_set_hidden_skipped(tmp_path):
    names = [e.upper() if i % 2 else e for i, e in enumerate(IMAGE_EXTENSIONS)]
    names = [f"{chr(97 + i)}{e}" for i, e in enumerate(names)]
    for name in names + ["._a.png", ".b.png", "notes.txt", "c.gif"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.png").mkdir()
    assert [p.name for p in list_images(tmp_path)] == sorted(names)
    with pytest.raises(ImageFileError, match="notes.txt: not a directory"):
        list_images(tmp_path / "notes.txt")


def test_benchmark_folder_ignores_macos_resource_forks(tmp_path):
    (tmp_path / "HR").mkdir()
    write_png(tmp_path / "HR" / "a.png", rng_img((8, 8, 3)))
    (tmp_path / "HR" / "._a.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")  # not an image
    _, pairs, on_the_fly = find_pairs(tmp_path, 2)
    assert [p.name for p in pairs] == ["a"] and on_the_fly


@pytest.mark.parametrize("kind", ["gray_png", "rgb_png", "gray_pillow_png", "rgb_tiff"])
def test_16bit_protocol_reader_scales_not_clamps(tmp_path, kind):
    """round(v / 257) per sample (the bug clamped 4000 and 8000 to 255); full fidelity keeps v."""
    gray = kind.startswith("gray")
    v = np.stack([DEEP, DEEP[::-1]]) if gray else np.stack([DEEP, DEEP[::-1], np.roll(DEEP, 5)], -1)[None]
    path = tmp_path / ("x.tif" if kind.endswith("tiff") else "x.png")
    if kind == "gray_pillow_png":
        Image.fromarray(v).save(path)  # mode I;16, another encoder
    elif kind == "rgb_tiff":
        import tifffile

        tifffile.imwrite(path, v, photometric="rgb")
    else:
        write_png(path, v)
    want = np.round(v.astype(np.float64) / 257).astype(np.uint8)
    want = np.repeat(want[..., None], 3, axis=2) if gray else want
    got = read_rgb8(path)
    assert got.dtype == np.uint8 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    assert got[0, 5, 0] == 16 and got[0, 6, 0] == 31  # 4000 and 8000, not 255
    full = read_image(path)
    assert full.bit_depth == 16 and full.was_gray == gray
    v3 = np.repeat(v[..., None], 3, axis=2) if gray else v
    np.testing.assert_array_equal(np.rint(full.rgb * 65535), v3)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("channels", [0, 1, 2, 3, 4])
def test_write_png_exact_and_deterministic(tmp_path, dtype, channels):
    shape = (7, 5) if channels == 0 else (7, 5, channels)
    src = rng_img(shape, dtype, seed=channels)
    write_png(tmp_path / "deep" / "a.png", src)  # parent folder created
    data = (tmp_path / "deep" / "a.png").read_bytes()
    assert data[24] == 8 * np.dtype(dtype).itemsize  # IHDR bit depth
    assert data[25] == {0: 0, 1: 0, 2: 4, 3: 2, 4: 6}[channels]  # IHDR colour type
    np.testing.assert_array_equal(imagecodecs.png_decode(data).reshape(src.shape), src)
    img = read_image(tmp_path / "deep" / "a.png")
    np.testing.assert_array_equal(np.rint(img.rgb[..., 0] * np.iinfo(dtype).max), src[..., 0] if channels else src)
    write_png(tmp_path / "b.png", src.copy())
    assert (tmp_path / "b.png").read_bytes() == data
    assert sorted(p.name for p in (tmp_path / "deep").iterdir()) == ["a.png"]  # no temp file left


def test_reads_other_encoders_16bit_interlaced_and_colour_key(tmp_path):
    for shape in [(1, 1, 3), (9, 13, 3), (3, 2, 4)]:  # Adam7, including empty passes
        src = rng_img(shape, np.uint16, seed=11)
        (tmp_path / "i.png").write_bytes(plain_png(src, interlace=True))
        img = read_image(tmp_path / "i.png")
        np.testing.assert_array_equal(np.rint(img.rgb * 65535), src[..., :3])
    gray = np.array([[3000, 4000], [3000, 8000]], np.uint16)
    Image.fromarray(gray).save(tmp_path / "k.png", transparency=3000)  # 16-bit tRNS colour key
    img = read_image(tmp_path / "k.png")
    assert img.was_gray and img.bit_depth == 16
    np.testing.assert_array_equal(img.alpha, [[0, 1], [0, 1]])


@pytest.mark.parametrize("fmt,orientation", [("png", 6), ("png16", 8), ("webp", 3), ("jpg", 5)])
def test_exif_orientation_applied_by_every_reader(tmp_path, fmt, orientation):
    src = rng_img((6, 4, 3), seed=orientation) if fmt != "png16" else rng_img((6, 4), np.uint16)
    im = Image.fromarray(src)
    exif = im.getexif()
    exif[0x0112] = orientation
    path = tmp_path / ("r.png" if fmt == "png16" else f"r.{fmt}")
    kw = {"lossless": True} if fmt == "webp" else {"quality": 100} if fmt == "jpg" else {}
    im.save(path, exif=exif, **kw)
    want = {3: np.rot90(src, 2), 5: src.swapaxes(0, 1), 6: np.rot90(src, -1), 8: np.rot90(src, 1)}[orientation]
    assert image_size(path) == want.shape[:2]
    full, rgb8 = read_image(path), read_rgb8(path)
    assert full.rgb.shape[:2] == rgb8.shape[:2] == want.shape[:2]
    if fmt != "jpg":  # lossless formats: exact pixels
        scale = 65535 if fmt == "png16" else 255
        got = np.rint(full.rgb * scale)[..., 0] if fmt == "png16" else rgb8
        np.testing.assert_array_equal(got, want)


def test_one_error_type_names_the_file(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    (tmp_path / "bad16.png").write_bytes(imagecodecs.png_encode(rng_img((4, 4, 3), np.uint16))[:60])
    for reader in (read_rgb8, read_image):
        for name in ("bad.png", "bad16.png"):
            with pytest.raises(ImageFileError, match=rf"{name}: "):
                reader(tmp_path / name)
        with pytest.raises(ImageFileError, match="gone.png: no such file"):
            reader(tmp_path / "gone.png")
    with pytest.raises(ImageFileError, match="gone.png: no such file"):
        image_size(tmp_path / "gone.png")


def test_quantize_clamps_rounds_half_even_in_float32():
    x = np.array([-0.5, 0.0, 0.4 / 255, 0.6 / 255, 254.5001 / 255, 1.0, 1.7, np.float32(200 / 255)])
    np.testing.assert_array_equal(quantize(x, 8), [0, 0, 0, 1, 255, 255, 255, 200])
    half = np.float32(2.5) / np.float32(255)  # float32 product exactly 2.5: ties go to even
    assert half * np.float32(255) == 2.5 and quantize(half) == 2
    np.testing.assert_array_equal(quantize(np.array([0.6 / 65535, 2.0]), 16), [1, 65535])
    v = np.arange(65536, dtype=np.uint16)
    np.testing.assert_array_equal(quantize(v.astype(np.float32) / np.float32(65535), 16), v)
    with pytest.raises(ValueError, match="non-finite"):
        quantize(np.array([np.nan]))
