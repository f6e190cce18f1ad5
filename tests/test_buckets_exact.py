"""Bucketed inference is exact: an image run inside a larger (bucket) shape gives the pixels of the
forward at its own size, under both semantics, whole and tiled, through `lsm-upscale` itself.

Before `lsm_jax.model.extent`, buckets reflect-padded the image, and `lsm-upscale`'s default output
differed from the exact forward by up to 255 levels at 8 bits on small images.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx
from PIL import Image

from lsm_jax.inference.buckets import bucket_side
from lsm_jax.inference.forward import Upscaler
from lsm_jax.model.saved import save_model
from lsm_jax.upscale import main as upscale_main
from lsm_jax.model.extent import Extent
from lsm_jax.model.network import LSM
from lsm_jax.model.variants import network_config

pytestmark = pytest.mark.usefixtures("compilation_cache")  # one compile per program across the module

WINDOW = 8
# The command test's crops (1×1, an odd crop) and a photo crop whose sides are not bucket sizes;
# the function test adds window − 1 and another odd crop.
COMMAND_SIZES = [(1, 1), (23, 37)]


def micro_config(semantics: str, scale: int, arch: str = "LSM"):
    """One group of four blocks: a plain WMS, a CML, a *shifted* WMS, a CML (spec §2)."""
    cfg = network_config("tiny", scale)
    cfg.update(arch=arch, embed_dim=32, depth=[4], num_heads=[2], mlp_ratio=1.0, split_size=[4, WINDOW],
               num_tokens=8, d_state=2)
    cfg.semantics = semantics
    return cfg


def micro_upscaler(semantics: str, scale: int, arch: str = "LSM", seed: int = 0) -> Upscaler:
    cfg = micro_config(semantics, scale, arch)
    return Upscaler(LSM(cfg, rngs=nnx.Rngs(seed)), cfg)


def test_forward_in_a_bucket_equals_the_forward_at_the_true_size():
    """x4 classic tail, paper semantics (sorted tokens, a causal scan over them): the padded region
    is zeroed before the convolutions at LR, 2× and 4×, attention rolls and masks at the true
    size, and padded tokens sort last. The other sizes and `reference` semantics run through the
    command below."""
    up = micro_upscaler("paper", 4)
    rng = np.random.default_rng(0)
    with jax.default_matmul_precision("highest"):
        for h, w in [(WINDOW - 1, WINDOW - 1), (31, 26)]:
            lr = rng.random((h, w, 3), dtype=np.float32)
            shape = (bucket_side(h, WINDOW), bucket_side(w, WINDOW))
            assert shape != (h, w)
            np.testing.assert_allclose(up.in_shape(lr, shape), up(lr), atol=2e-5, err_msg=f"{h}x{w} in {shape}")


def _in_bucket(x: np.ndarray, shape, garbage_seed: int) -> np.ndarray:
    """(B, h, w, C) -> (B, H, W, C) with large random values outside the image: inside the network
    the padded region holds whatever the layers computed there, never zeros."""
    b, h, w, c = x.shape
    out = 50.0 * np.random.default_rng(garbage_seed).standard_normal((b, *shape, c)).astype(np.float32)
    out[:, :h, :w] = x
    return out


@pytest.mark.parametrize("semantics", ["reference", "paper"])
def test_cml_token_mixer_ignores_whatever_lies_in_the_padding(semantics):
    """The semantic LRU alone, sensitive where the whole network is not (its random init damps the
    LRU's share of the output): padded tokens with large garbage must not reach a real token
    through the sort, the scan, the raster-order modulation (Q5) or the CPE convolution."""
    cfg = micro_config(semantics, 2)
    model = LSM(cfg, rngs=nnx.Rngs(1))
    block = model.layers[0].blocks[1]
    h, w, shape = 5, 7, (8, 16)
    rng = np.random.default_rng(2)
    u = rng.standard_normal((2, h, w, cfg.embed_dim)).astype(np.float32)   # two images: Q1's batch scan
    ub = _in_bucket(u, shape, 3)
    with jax.default_matmul_precision("highest"):
        want = block.lru(u.reshape(2, h * w, -1), block.embedding[...], (h, w), model.semantics, model.scan)
        got = block.lru(ub.reshape(2, -1, cfg.embed_dim), block.embedding[...], shape, model.semantics,
                        model.scan, extent=Extent.of(h, w))
    got = np.asarray(got).reshape(2, *shape, -1)[:, :h, :w].reshape(2, h * w, -1)
    np.testing.assert_allclose(got, np.asarray(want), atol=1e-5)


@pytest.mark.parametrize("shifted", [False, True])
def test_window_attention_ignores_whatever_lies_in_the_padding(shifted):
    """Window attention pads to the window multiple of the *true* size and, shifted, rolls and masks
    at that size; the padded region's garbage must not enter a real token's window."""
    cfg = micro_config("paper", 2)
    model = LSM(cfg, rngs=nnx.Rngs(4))
    attn = model.layers[0].blocks[0].attn
    h, w, shape = 11, 13, (24, 32)
    u = np.random.default_rng(5).standard_normal((1, h, w, cfg.embed_dim)).astype(np.float32)
    ub = _in_bucket(u, shape, 6)
    with jax.default_matmul_precision("highest"):
        want = attn(u.reshape(1, h * w, -1), (h, w), shifted)
        got = attn(ub.reshape(1, -1, cfg.embed_dim), shape, shifted, Extent.of(h, w))
    got = np.asarray(got).reshape(1, *shape, -1)[:, :h, :w].reshape(1, h * w, -1)
    np.testing.assert_allclose(got, np.asarray(want), atol=1e-5)


def test_in_shape_refuses_a_shape_smaller_than_the_image():
    up = micro_upscaler("paper", 2, arch="LSM_light")
    with pytest.raises(ValueError, match="does not fit"):
        up.in_shape(np.zeros((9, 9, 3), np.float32), (8, 16))


def _write_inputs(folder):
    from skimage import data
    folder.mkdir()
    rng = np.random.default_rng(7)
    for h, w in COMMAND_SIZES:
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"crop_{h}x{w}.png")
    # A real photograph's crop, 45x61: neither side is a bucket size (48, 64).
    Image.fromarray(data.astronaut()[200:245, 180:241]).save(folder / "photo_45x61.png")


def _outputs(folder) -> dict[str, np.ndarray]:
    return {p.name: np.asarray(Image.open(p), np.int16) for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("semantics", ["reference", "paper"])
def test_upscale_command_default_equals_exact_shapes_whole_and_tiled(tmp_path, semantics):
    """`lsm-upscale` with its default flags (buckets on) writes the 8-bit images that exact-shape
    compilation (`--no-buckets`) writes, within 1 level, whole and with forced tiles."""
    up = micro_upscaler(semantics, 2, arch="LSM_light", seed=5)
    ckpt = save_model(tmp_path / "ckpt", up.cfg, nnx.state(up.model, nnx.Param))
    inputs = tmp_path / "in"
    _write_inputs(inputs)
    runs = {"default": [], "exact": ["--no-buckets"]}
    if semantics == "paper":      # tiles: one of each run's shapes is a ladder tile, edges are not
        runs.update({"tiled": ["--tile", "16", "--tile-overlap", "4"],
                     "tiled_exact": ["--tile", "16", "--tile-overlap", "4", "--no-buckets"]})
    got = {}
    with jax.default_matmul_precision("highest"):
        for name, flags in runs.items():
            out = tmp_path / name
            assert upscale_main(["--checkpoint", str(ckpt), "--input", str(inputs), "--output", str(out),
                                 "--quiet", "--no-cache", *flags]) == 0
            got[name] = _outputs(out)
    pairs = [("default", "exact")] + ([("tiled", "tiled_exact")] if "tiled" in got else [])
    for a, b in pairs:
        assert got[a].keys() == got[b].keys() and len(got[a]) == len(COMMAND_SIZES) + 1
        for file in got[a]:
            diff = np.abs(got[a][file] - got[b][file])
            assert diff.max() <= 1, f"{a} vs {b}, {file}: {diff.max()} levels"
    if "tiled" in got:   # the tiles really cut the larger images (else the tiled pair tests nothing new)
        assert any(np.abs(got["tiled"][f] - got["default"][f]).max() > 0 for f in got["tiled"])
