"""The upscale command and its image I/O.

Almost everything runs with a deterministic stand-in for the network (nearest-neighbour
repetition), so the file handling is checked exactly and fast; one test at the end drives the real
``Upscaler`` on a tiny checkpoint once the inference module and the checkpoint helper exist.
"""

from __future__ import annotations

import imagecodecs
import numpy as np
import pytest
from PIL import Image

from fixture_checkpoint import tiny_checkpoint
from fixture_png import plain_png, rng_img
from lsm_jax.data.image_io import ImageFileError, read_image
from lsm_jax.data.quantize import quantize
from lsm_jax.evaluation.metrics import quantize as metrics_quantize
from lsm_jax import upscale
from lsm_jax.upscale import main
from lsm_jax.inference.image_files import resize_alpha, upscale_file, upscale_paths

pytestmark = pytest.mark.usefixtures("compilation_cache")  # each real-model run compiles one program once

S = 2


def nearest(x: np.ndarray, s: int = S) -> np.ndarray:
    """Stand-in network: nearest-neighbour upscaling (output values = input values exactly)."""
    return np.repeat(np.repeat(x, s, axis=0), s, axis=1)


class FakeUpscaler:
    """Quacks like ``lsm_jax.inference.Upscaler`` for the CLI tests."""

    scale = S

    def __call__(self, lr):
        return nearest(lr)


@pytest.fixture
def fake_model(monkeypatch):
    monkeypatch.setattr(upscale, "_load_upscaler", lambda checkpoint, *args: FakeUpscaler())


@pytest.fixture
def ckpt(tmp_path):
    """A folder that passes for a checkpoint (the fake model never reads it)."""
    d = tmp_path / "ckpt"
    d.mkdir()
    (d / "config.json").write_text("{}")
    return d


def cli(checkpoint, inp, out, *extra) -> list[str]:
    return ["--checkpoint", str(checkpoint), "-i", str(inp), "-o", str(out), *extra]


# ---------------------------------------------------------------------------------------------
# 8-bit files through upscale_file


@pytest.mark.parametrize("hw", [(1, 1), (7, 5)])
def test_rgb8_sizes_and_exact_values(tmp_path, hw):
    src = rng_img(hw + (3,))
    Image.fromarray(src).save(tmp_path / "in.png")
    out = upscale_file(tmp_path / "in.png", tmp_path / "out", nearest, S)
    assert out == tmp_path / "out" / "in_x2.png"
    with Image.open(out) as im:
        assert im.mode == "RGB" and im.size == (hw[1] * S, hw[0] * S)
        # Exact: v/255 -> *255 must round back to v (truncation would lose some values by one).
        np.testing.assert_array_equal(np.asarray(im), nearest(src))


def test_gray8_comes_back_gray_as_channel_mean(tmp_path):
    src = rng_img((7, 5), seed=1)
    src[0, 0], src[0, 1] = 0, 255
    Image.fromarray(src).save(tmp_path / "g.png")

    def tinted(x):
        # Tilt the channels the way a colour network might; the mean undoes it, BT.601 luma would not.
        return nearest(x) + np.array([0.1, 0.0, -0.1], np.float32)

    with Image.open(upscale_file(tmp_path / "g.png", tmp_path, tinted, S)) as im:
        assert im.mode == "L"
        np.testing.assert_array_equal(np.asarray(im), nearest(src))


def test_rgba8_keeps_alpha_resized_bicubic(tmp_path):
    src = rng_img((7, 5, 4), seed=2)
    src[..., 3] = np.linspace(0, 255, 35).reshape(7, 5).round().astype(np.uint8)
    Image.fromarray(src, "RGBA").save(tmp_path / "a.png")
    with Image.open(upscale_file(tmp_path / "a.png", tmp_path, nearest, S)) as im:
        assert im.mode == "RGBA" and im.size == (10, 14)
        out = np.asarray(im)
    np.testing.assert_array_equal(out[..., :3], nearest(src[..., :3]))
    expect_alpha = quantize(resize_alpha(src[..., 3] / np.float32(255), S), 8)
    np.testing.assert_array_equal(out[..., 3], expect_alpha)
    # Bicubic, not nearest: a ramp gains in-between values.
    assert len(np.unique(out[..., 3])) > len(np.unique(src[..., 3]))


def test_constant_alpha_and_la(tmp_path):
    src = rng_img((4, 3, 2), seed=3)
    src[..., 1] = 77
    Image.fromarray(src, "LA").save(tmp_path / "la.png")
    with Image.open(upscale_file(tmp_path / "la.png", tmp_path, nearest, S)) as im:
        assert im.mode == "LA"
        out = np.asarray(im)
    np.testing.assert_array_equal(out[..., 0], nearest(src[..., 0]))
    assert np.all(out[..., 1] == 77)


def test_palette_bilevel_and_colour_key(tmp_path):
    gray = rng_img((5, 6), seed=4)
    Image.fromarray(gray).convert("P").save(tmp_path / "pg.png")  # P with a gray palette
    colour = rng_img((5, 6, 3), seed=5)
    Image.fromarray(colour).quantize(16).save(tmp_path / "pc.png")
    Image.fromarray(gray > 128).save(tmp_path / "bw.bmp")
    rgb_key = colour.copy()
    Image.fromarray(rgb_key).save(tmp_path / "key.png", transparency=tuple(int(v) for v in colour[0, 0]))
    modes = {}
    for name in ("pg.png", "pc.png", "bw.bmp", "key.png"):
        with Image.open(upscale_file(tmp_path / name, tmp_path / "o", nearest, S)) as im:
            modes[name] = im.mode
            if name == "key.png":
                assert np.asarray(im)[0, 0, 3] == 0 and np.asarray(im)[..., 3].max() == 255
    assert modes == {"pg.png": "L", "pc.png": "RGB", "bw.bmp": "L", "key.png": "RGBA"}


def test_jpeg_webp_and_exif_orientation(tmp_path):
    src = rng_img((6, 4, 3), seed=6)
    im = Image.fromarray(src)
    exif = im.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    im.save(tmp_path / "r.jpg", exif=exif, quality=95)
    im.save(tmp_path / "w.webp", lossless=True)
    with Image.open(upscale_file(tmp_path / "r.jpg", tmp_path, nearest, S)) as out:
        assert out.size == (6 * S, 4 * S)  # displayed orientation: 4 rows, 6 columns
    with Image.open(upscale_file(tmp_path / "w.webp", tmp_path, nearest, S)) as out:
        np.testing.assert_array_equal(np.asarray(out), nearest(src))


# ---------------------------------------------------------------------------------------------
# 16-bit


def test_gray16_png_in_gray16_png_out(tmp_path):
    src = rng_img((7, 5), np.uint16, seed=7)
    Image.fromarray(src).save(tmp_path / "g16.png")  # Pillow writes mode I;16
    img = read_image(tmp_path / "g16.png")
    assert img.bit_depth == 16 and img.was_gray and img.alpha is None
    with Image.open(upscale_file(tmp_path / "g16.png", tmp_path, nearest, S)) as im:
        assert im.mode == "I;16"
        np.testing.assert_array_equal(np.asarray(im), nearest(src))


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_colour16_png_keeps_all_16_bits(tmp_path, channels):
    src = rng_img((7, 5, channels), np.uint16, seed=8)
    if channels in (2, 4):
        src[..., -1] = 40000  # constant alpha: exact expectation
    (tmp_path / "c16.png").write_bytes(plain_png(src))
    with Image.open(tmp_path / "c16.png") as im:
        # The trap this module exists for: Pillow reads 16-bit colour as 8 bits without a word.
        assert im.mode in ("RGB", "RGBA", "LA")
    img = read_image(tmp_path / "c16.png")
    assert img.bit_depth == 16 and img.was_gray == (channels == 2)
    np.testing.assert_array_equal(np.rint(img.rgb[..., 0] * 65535), src[..., 0])
    out = upscale_file(tmp_path / "c16.png", tmp_path, nearest, S)
    got = imagecodecs.png_decode(out.read_bytes())
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, nearest(src))
    with Image.open(out) as im:  # an independent decoder agrees on the high bytes
        high = np.asarray(im.convert("LA") if channels == 2 else im)  # Pillow opens 16-bit LA as RGBA
        np.testing.assert_array_equal(high.reshape(got.shape), (got >> 8).astype(np.uint8))


def test_16bit_tiff_rgb_and_gray_alpha(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    rgb = rng_img((5, 7, 3), np.uint16, seed=9)
    tifffile.imwrite(tmp_path / "rgb16.tif", rgb, photometric="rgb", compression="zlib")
    ga = rng_img((5, 7, 2), np.uint16, seed=10)
    ga[..., 1] = 65535
    tifffile.imwrite(tmp_path / "ga16.tiff", ga, photometric="minisblack", extrasamples=["unassalpha"])
    got = imagecodecs.png_decode(upscale_file(tmp_path / "rgb16.tif", tmp_path, nearest, S).read_bytes())
    np.testing.assert_array_equal(got, nearest(rgb))
    got = imagecodecs.png_decode(upscale_file(tmp_path / "ga16.tiff", tmp_path, nearest, S).read_bytes())
    np.testing.assert_array_equal(got, nearest(ga))


def test_written_png_is_the_image_the_metrics_score(tmp_path):
    """upscale and the metrics quantise alike, on values where float32 and float64 rounding differ."""
    k = np.arange(256)
    mid = ((k + 0.5) / 255).astype(np.float32)  # float32 samples next to each rounding boundary
    cand = np.concatenate([np.nextafter(mid, np.float32(0)), mid, np.nextafter(mid, np.float32(1))])
    cand = cand[cand <= 1]
    f64 = np.rint(cand.astype(np.float64) * 255)
    split = cand[np.round(cand * np.float32(255)) != f64]
    assert split.size >= 100  # the test has teeth: these round differently in float64
    sr = np.resize(np.concatenate([split, cand]), (18 * S, 9 * S, 3))  # every candidate appears
    Image.fromarray(rng_img((18, 9, 3))).save(tmp_path / "x.png")
    with Image.open(upscale_file(tmp_path / "x.png", tmp_path, lambda lr: sr, S)) as im:
        written = np.asarray(im)
    np.testing.assert_array_equal(written, metrics_quantize(sr))
    assert np.any(written != np.rint(sr.astype(np.float64) * 255))


def test_clamped_model_output(tmp_path):
    Image.fromarray(rng_img((3, 3, 3))).save(tmp_path / "x.png")
    wild = lambda x: np.where(nearest(x) > 0.5, 1.7, -0.3)  # noqa: E731 - outside [0, 1]
    with Image.open(upscale_file(tmp_path / "x.png", tmp_path, wild, S)) as im:
        assert set(np.unique(np.asarray(im))) <= {0, 255}


# ---------------------------------------------------------------------------------------------
# Folders, the CLI and failures


def test_folder_with_corrupt_file(tmp_path, ckpt, fake_model, capsys):
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(rng_img((5, 4, 3))).save(d / "a.png")
    Image.fromarray(rng_img((3, 6, 3))).save(d / "b.JPG")
    (d / "c.png").write_bytes(b"this is not a PNG")
    good = (d / "a.png").read_bytes()
    (d / "d.png").write_bytes(good[: len(good) // 2])  # truncated
    (d / "README.txt").write_text("not an image")
    out = tmp_path / "out" / "nested"
    rc = main(cli(ckpt, d, out))
    assert rc == 1
    assert sorted(p.name for p in out.iterdir()) == ["a_x2.png", "b_x2.png"]
    err = capsys.readouterr().err
    bad_lines = [line for line in err.splitlines() if line.startswith(str(d))]
    assert len(bad_lines) == 2
    assert bad_lines[0].startswith(f"{d / 'c.png'}: ") and bad_lines[1].startswith(f"{d / 'd.png'}: ")
    assert "README" not in "".join(bad_lines) and "1 non-image" in err


def test_upscale_paths_reports_and_continues(tmp_path):
    Image.fromarray(rng_img((2, 2, 3))).save(tmp_path / "a.png")
    Image.fromarray(rng_img((2, 2, 3))).save(tmp_path / "a.jpg")  # same output name
    (tmp_path / "z.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    lines = []
    failures = upscale_paths(
        [tmp_path / "a.jpg", tmp_path / "a.png", tmp_path / "z.png", tmp_path / "gone.png"],
        tmp_path / "o", nearest, S, report=lines.append,
    )
    assert [p.name for p, _ in failures] == ["a.png", "z.png", "gone.png"]
    assert "already used by a.jpg" in failures[0][1] and "no such file" in failures[2][1]
    assert lines == [f"{p}: {why}" for p, why in failures]
    assert (tmp_path / "o" / "a_x2.png").exists()
    with pytest.raises(ImageFileError, match="z.png"):
        read_image(tmp_path / "z.png")


def test_missing_input_or_checkpoint_is_one_line(tmp_path, ckpt):
    Image.fromarray(rng_img((2, 2, 3))).save(tmp_path / "a.png")
    with pytest.raises(SystemExit) as e:
        main(cli(ckpt, tmp_path / "nope.png", tmp_path / "o"))
    assert "input not found" in str(e.value.code) and "\n" not in str(e.value.code)
    with pytest.raises(SystemExit) as e:
        main(cli(tmp_path / "no_ckpt", tmp_path / "a.png", tmp_path / "o"))
    assert "checkpoint not found" in str(e.value.code) and "no_ckpt" in str(e.value.code)
    with pytest.raises(SystemExit, match=r"checkpoint not found: lsm_light_x4 \(a released model: pass --model"):
        main(cli("lsm_light_x4", tmp_path / "a.png", tmp_path / "o"))
    with pytest.raises(SystemExit, match="unknown model 'lsm_huge_x4': the released models are lsm_x2, "):
        main(["-i", str(tmp_path / "a.png"), "-o", str(tmp_path / "o"), "--model", "lsm_huge_x4"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="empty: not an lsm-jax checkpoint folder"):
        main(cli(tmp_path / "empty", tmp_path / "a.png", tmp_path / "o"))
    for bad, message in ((["--suffix", "_{size}"], "the only field is {scale}"),
                         (["--suffix", "/x"], "path separator"), (["--quality", "0"], "--quality must be 1-100")):
        with pytest.raises(SystemExit, match=message):
            main(cli(ckpt, tmp_path / "a.png", tmp_path / "o", *bad))


def test_suffix_and_formats(tmp_path, ckpt, fake_model, capsys):
    d = tmp_path / "in"
    d.mkdir()
    rgb = rng_img((5, 4, 3), seed=30)
    Image.fromarray(rgb).save(d / "rgb.png")
    Image.fromarray(rng_img((5, 4, 4), seed=31), "RGBA").save(d / "alpha.png")
    deep = rng_img((5, 4), np.uint16, seed=32)
    Image.fromarray(deep).save(d / "deep.png")
    assert main(cli(ckpt, d, tmp_path / "png", "--suffix=-sr{scale}", "-q")) == 0   # "=": it starts with "-"
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["alpha-sr2.png", "deep-sr2.png", "rgb-sr2.png"]
    # JPEG: 8-bit, no alpha (that file fails, the others are written); 16 bits are rounded, with a note.
    assert main(cli(ckpt, d, tmp_path / "jpg", "--ext", "jpg", "--suffix", "")) == 1
    err = capsys.readouterr().err
    assert "alpha.png: the image has an alpha channel, which JPEG cannot hold: use --ext png or webp" in err
    assert "16-bit result written with 8 bits per sample" in err
    assert sorted(p.name for p in (tmp_path / "jpg").iterdir()) == ["deep.jpg", "rgb.jpg"]
    with Image.open(tmp_path / "jpg" / "rgb.jpg") as im:
        assert im.format == "JPEG" and im.size == (8, 10)
    # WebP: lossless by default, alpha kept, gray stored as RGB.
    assert main(cli(ckpt, d, tmp_path / "webp", "--ext", "WEBP", "-q")) == 0
    with Image.open(tmp_path / "webp" / "rgb_x2.webp") as im:
        np.testing.assert_array_equal(np.asarray(im), nearest(rgb))
    with Image.open(tmp_path / "webp" / "alpha_x2.webp") as im:
        assert im.mode == "RGBA"
    with Image.open(tmp_path / "webp" / "deep_x2.webp") as im:
        gray = np.asarray(im.convert("RGB"))[..., 0]
    np.testing.assert_array_equal(gray, np.rint(nearest(deep) / 257.0).astype(np.uint8))
    # An empty suffix into the input folder would overwrite the input: refused.
    assert main(cli(ckpt, d / "rgb.png", d, "--suffix", "", "-q")) == 1
    assert "would overwrite the input" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory):
    """The real tiny network: the golden fixture's weights through the converter."""
    return tiny_checkpoint(tmp_path_factory)


def test_same_input_same_bits(tmp_path, tiny_ckpt, capsys, monkeypatch):
    """Two runs of the real network, each with a fresh model load, write the same bytes; so does the
    state_dict given straight to --checkpoint (converted on the fly)."""
    from fixture_checkpoint import write_reference_files
    src = rng_img((7, 5, 3), seed=12)
    Image.fromarray(src).save(tmp_path / "a.png")
    for out in ("o1", "o2"):
        assert main(cli(tiny_ckpt, tmp_path / "a.png", tmp_path / out, "--quiet")) == 0
    assert capsys.readouterr() == ("", "")
    first = (tmp_path / "o1" / "a_x2.png").read_bytes()
    assert first == (tmp_path / "o2" / "a_x2.png").read_bytes()
    weights, _ = write_reference_files(tmp_path / "ref")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))      # the converted model's cache: this test's
    assert main(cli(weights, tmp_path / "a.png", tmp_path / "o3", "--tile", "4", "--tile-overlap", "1")) == 0
    err, out = capsys.readouterr()[::-1]
    assert "converted weights.npz: LSM x2" in err and "model weights (LSM x2): loaded" in err
    assert "compiled for this size" in err and "MP out; compile" in out and "program(s)" in out
    assert (tmp_path / "o3" / "a_x2.png").exists()
    with Image.open(tmp_path / "o1" / "a_x2.png") as im:   # the network's output, not a copy of the input
        assert im.mode == "RGB" and im.size == (10, 14)
        rgb = np.asarray(im)
    assert not np.array_equal(rgb, nearest(src))


# ---------------------------------------------------------------------------------------------
# End to end with the real model


def test_end_to_end_real_checkpoint(tiny_ckpt, tmp_path):
    """The real tiny network on 1×1, 7×5, gray, RGBA and 16-bit inputs; a duplicate gives the same bits."""
    ckpt_dir = tiny_ckpt
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(rng_img((1, 1, 3), seed=13)).save(d / "one.png")
    Image.fromarray(rng_img((7, 5, 3), seed=14)).save(d / "rgb.png")
    (d / "same.png").write_bytes((d / "rgb.png").read_bytes())
    Image.fromarray(rng_img((7, 5), seed=15)).save(d / "gray.png")
    Image.fromarray(rng_img((7, 5, 4), seed=16), mode="RGBA").save(d / "rgba.png")
    gray16 = (np.random.default_rng(17).random((7, 5)) * 65535).astype(np.uint16)
    Image.fromarray(gray16).save(d / "deep.png")
    assert main(cli(ckpt_dir, d, tmp_path / "o1", "--quiet")) == 0
    out = tmp_path / "o1"
    with Image.open(out / "one_x2.png") as im:
        assert im.mode == "RGB" and im.size == (2, 2)
    with Image.open(out / "rgb_x2.png") as im:
        assert im.mode == "RGB" and im.size == (10, 14)
    with Image.open(out / "gray_x2.png") as im:
        assert im.mode == "L" and im.size == (10, 14)
    with Image.open(out / "rgba_x2.png") as im:
        assert im.mode == "RGBA" and im.size == (10, 14)
    with Image.open(out / "deep_x2.png") as im:
        assert im.mode == "I;16" and im.size == (10, 14)
    assert (out / "same_x2.png").read_bytes() == (out / "rgb_x2.png").read_bytes()
    # Reruns with a fresh model load: test_same_input_same_bits.
