"""The Python API (`lsm_jax.load_model`, `Model.upscale`): the input's kind comes back, with the command's pixels."""

import doctest

import numpy as np
import pytest
from PIL import Image

import lsm_jax
from fixture_checkpoint import tiny_checkpoint
from fixture_png import rng_img
from lsm_jax.inference import api
from lsm_jax.upscale import main as upscale_main


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory)


@pytest.fixture(scope="module")
def model(model_dir):
    return lsm_jax.load_model(model_dir)


def _command_pixels(tmp_path, model_dir, image: Image.Image, *flags) -> np.ndarray:
    image.save(tmp_path / "in.png")
    assert upscale_main(["--checkpoint", str(model_dir), "--input", str(tmp_path / "in.png"),
                         "--output", str(tmp_path / "out"), "--quiet", "--no-cache", *flags]) == 0
    with Image.open(tmp_path / "out" / "in_x2.png") as im:
        return np.asarray(im)


def test_the_docstring_example_runs(model_dir):
    photo = rng_img((9, 11, 3), seed=3)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in doctest.DocTestFinder().find(api, globs={"checkpoint": str(model_dir), "photo": photo}):
        runner.run(test)
    assert runner.summarize(verbose=False).attempted >= 4
    assert runner.summarize(verbose=False).failed == 0


@pytest.mark.parametrize("flags,kwargs", [((), {}), (("--tile", "6"), {"tile": 6})])
def test_uint8_in_uint8_out_equals_the_command(tmp_path, model_dir, model, flags, kwargs):
    src = rng_img((13, 10, 3), seed=5)
    sr = model.upscale(src, **kwargs)
    assert sr.dtype == np.uint8 and sr.shape == (26, 20, 3)
    np.testing.assert_array_equal(sr, _command_pixels(tmp_path, model_dir, Image.fromarray(src), *flags))


def test_uint16_float_and_gray_keep_their_kind(model):
    src8 = rng_img((8, 7, 3), seed=6)
    ref = model.upscale(src8)
    deep = model.upscale(src8.astype(np.uint16) * 257)
    assert deep.dtype == np.uint16 and deep.shape == ref.shape
    # The same picture at 16 bits: within one 8-bit level of the 8-bit result.
    assert np.abs(deep.astype(np.float64) / 257 - ref).max() <= 1.0
    flt = model.upscale(src8.astype(np.float64) / 255)
    assert flt.dtype == np.float64 and flt.shape == ref.shape and 0.0 <= flt.min() and flt.max() <= 1.0
    np.testing.assert_array_equal(np.rint(flt * 255).astype(np.uint8), ref)   # the same rounding rule
    gray = model.upscale(src8[..., 0])
    assert gray.dtype == np.uint8 and gray.shape == ref.shape[:2]


def test_pil_in_pil_out_equals_the_command(tmp_path, model_dir, model):
    src = Image.fromarray(rng_img((9, 8, 4), seed=7), mode="RGBA")
    sr = model.upscale(src)
    assert isinstance(sr, Image.Image) and sr.mode == "RGBA" and sr.size == (16, 18)
    np.testing.assert_array_equal(np.asarray(sr), _command_pixels(tmp_path, model_dir, src))
    gray = model.upscale(Image.fromarray(rng_img((9, 8), seed=8)))
    assert gray.mode == "L" and gray.size == (16, 18)


def test_integer_arrays_are_never_read_as_unit_floats(model):
    with pytest.raises(ValueError, match="int64 array: pass uint8 or uint16"):
        model.upscale(np.zeros((4, 4, 3), np.int64))
    with pytest.raises(ValueError, match="shape"):
        model.upscale(np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(FileNotFoundError, match="not an lsm-jax checkpoint"):
        lsm_jax.load_model("/nonexistent/ckpt")
