"""`in_chans`: 1-channel (gray) models work end to end (converter, forward, upscale); others are refused.

The reference subtracts the DIV2K RGB mean only when `in_chans == 3` and no mean otherwise, and its
last convolution has `in_chans` outputs. A gray model built from the golden fixture by keeping only
input channel 0 of `conv_first` and output channel 0 of `conv_last` must therefore reproduce channel 0
of the RGB model fed (x + m_R, m_G, m_B), minus m_R: after the mean subtraction both see (x, 0, 0).
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
import yaml
from flax import nnx
from PIL import Image

from fixture_checkpoint import fixture_arrays, write_reference_files
from lsm_jax.data.quantize import quantize
from lsm_jax.porting.checkpoint import ConversionError, convert
from lsm_jax.inference.forward import Upscaler
from lsm_jax.model.saved import read_config
from lsm_jax.upscale import main as upscale_main
from lsm_jax.model.network import LSM, RGB_MEAN
from lsm_jax.model.variants import network_config

pytestmark = pytest.mark.usefixtures("compilation_cache")  # the CLI's compile of GRAY's shape is a cache hit


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """(RGB checkpoint, gray checkpoint) converted from the fixture's tiny x2 weights."""
    root = tmp_path_factory.mktemp("in_chans")
    weights, options = write_reference_files(root / "rgb_src")
    convert(weights, options, root / "rgb")
    state = {k: v for k, v in fixture_arrays().items() if "/" not in k}
    state["conv_first.weight"] = state["conv_first.weight"][:, :1]     # (C, 1, 3, 3)
    state["conv_last.weight"] = state["conv_last.weight"][:1]           # (1, 64, 3, 3)
    state["conv_last.bias"] = state["conv_last.bias"][:1]
    np.savez(root / "gray.npz", **state)
    opts = yaml.safe_load(options.read_text())
    opts["network_g"]["in_chans"] = 1
    (root / "gray.yml").write_text(yaml.safe_dump(opts))
    convert(root / "gray.npz", root / "gray.yml", root / "gray")
    return root / "rgb", root / "gray"


GRAY = np.random.default_rng(3).integers(0, 256, (7, 5), dtype=np.uint8)


@pytest.fixture(scope="module")
def gray_output(checkpoints):
    """The gray model's output for GRAY, through the jitted whole-image path `upscale` uses."""
    with jax.default_matmul_precision("highest"):
        return Upscaler.from_checkpoint(checkpoints[1])(GRAY[..., None] / np.float32(255))


def test_gray_model_matches_the_rgb_model_on_one_channel(checkpoints, gray_output):
    assert read_config(checkpoints[1]).in_chans == 1
    x = GRAY / np.float32(255)
    x3 = np.stack([x + RGB_MEAN[0], np.full_like(x, RGB_MEAN[1]), np.full_like(x, RGB_MEAN[2])], -1)
    with jax.default_matmul_precision("highest"):
        y3 = Upscaler.from_checkpoint(checkpoints[0])(x3)
    assert gray_output.shape == (14, 10, 1)
    np.testing.assert_allclose(gray_output[..., 0], y3[..., 0] - RGB_MEAN[0], atol=2e-5)


def test_upscale_gray_image_with_a_gray_model(checkpoints, gray_output, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(GRAY).save(src / "gray.png")
    Image.fromarray(np.random.default_rng(4).integers(0, 256, (7, 5, 3), dtype=np.uint8)).save(src / "rgb.png")
    with jax.default_matmul_precision("highest"):
        code = upscale_main(["--checkpoint", str(checkpoints[1]), "--input", str(src), "--output",
                             str(tmp_path / "out"), "--quiet", "--no-buckets"])
    assert code == 1                        # the colour file fails, the gray one is written
    err = capsys.readouterr().err
    assert "rgb.png: " in err and "a colour image, but the checkpoint is a 1-channel (gray) model" in err
    assert not (tmp_path / "out" / "rgb_x2.png").exists()
    with Image.open(tmp_path / "out" / "gray_x2.png") as im:
        assert im.mode == "L" and im.size == (10, 14)
        np.testing.assert_array_equal(np.asarray(im), quantize(gray_output, 8)[..., 0])
    with pytest.raises(ValueError, match=r"expected an \(H, W, 1\) gray image"):
        Upscaler.from_checkpoint(checkpoints[1])(np.zeros((7, 5, 3), np.float32))


def test_other_channel_counts_are_refused(tmp_path):
    cfg = network_config("tiny", 2)
    cfg.in_chans = 4
    with pytest.raises(ValueError, match=r"in_chans must be 1 \(gray\) or 3 \(RGB\), got 4"):
        nnx.eval_shape(lambda: LSM(cfg, rngs=nnx.Rngs(0)))
    weights, options = write_reference_files(tmp_path / "src")
    opts = yaml.safe_load(options.read_text())
    opts["network_g"]["in_chans"] = 2
    options.write_text(yaml.safe_dump(opts))
    with pytest.raises(ConversionError, match=r"options.yml: network_g.in_chans is 2; expected 1"):
        convert(weights, options, tmp_path / "out")


def test_training_refuses_a_gray_model():
    from lsm_jax.training import sharding, step
    from fixture_training import micro_config
    config = micro_config(**{"model.in_chans": 1})
    with pytest.raises(step.TrainingError, match="model.in_chans=1: training reads RGB images"):
        step.check_config(config, sharding.make_mesh(8, 1, 1))
