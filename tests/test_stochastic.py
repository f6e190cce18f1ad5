"""Training-time randomness: Gumbel categorisation, the drop-path schedule and drop path itself."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lsm_jax.model.layers import drop_path
from lsm_jax.model.network import LSM, CMLBlock, WMSBlock
from lsm_jax.model.smu import categorise
from lsm_jax.model.variants import network_config

# Upper 0.1 % points of the chi-square distribution: df 5 and df 1 (fixed seeds, so this never flakes;
# it bounds how far a correct sampler may stray, and a wrong one lands far beyond it).
CHI2_999 = {1: 10.83, 5: 20.52}


def _chi_square(counts: np.ndarray, probs: np.ndarray) -> float:
    expected = counts.sum() * probs
    return float(((counts - expected) ** 2 / expected).sum())


def test_gumbel_categories_follow_the_softmax():
    """Hard Gumbel-max samples of the SMU logits: category k with probability softmax(S)_k."""
    logits = jnp.asarray([1.5, 0.2, -0.7, 0.9, 0.0, -2.0], jnp.float32)
    n = 30_000
    cats = np.asarray(categorise(jnp.broadcast_to(logits, (2, n // 2, 6)), jax.random.key(0)))
    assert cats.shape == (2, n // 2) and cats.dtype == np.int32
    counts = np.bincount(cats.ravel(), minlength=6)
    probs = np.asarray(jax.nn.softmax(logits), np.float64)
    assert _chi_square(counts, probs) < CHI2_999[5]
    # Each token draws its own noise: two tokens with the same logits disagree as often as independent
    # draws would (P(same) = Σ p²), not always or never.
    same = float(np.mean(cats[0] == cats[1]))
    assert abs(same - float(np.sum(probs ** 2))) < 4 * np.sqrt(0.25 / (n // 2))
    # Without a key: the deterministic argmax of inference.
    assert (np.asarray(categorise(jnp.broadcast_to(logits, (3, 4, 6)), None)) == 0).all()


def test_drop_path_rates_rise_linearly_over_all_blocks():
    """The reference's stochastic-depth rule: linspace(0, drop_path_rate, Σdepth), block by block
    across the groups (not restarting in each group)."""
    cfg = network_config("tiny", 2)
    cfg.update(depth=[4, 2, 4], num_heads=[2, 2, 2], embed_dim=32, drop_path_rate=0.3)
    model = nnx.eval_shape(lambda: LSM(cfg, rngs=nnx.Rngs(0)))
    blocks = [b for group in model.layers for b in group.blocks]
    assert [type(b) for b in blocks[:2]] == [WMSBlock, CMLBlock]
    np.testing.assert_allclose([b.drop_rate for b in blocks], np.linspace(0.0, 0.3, 10), rtol=0, atol=1e-12)


@pytest.mark.parametrize("rate", [0.1, 0.5])
def test_drop_path_drops_whole_samples_and_keeps_the_mean(rate):
    n = 20_000
    x = jnp.broadcast_to(jnp.arange(1.0, 7.0).reshape(1, 2, 3), (n, 2, 3))
    y = np.asarray(drop_path(x, rate, jax.random.key(1)))
    kept = (y != 0).all(axis=(1, 2))
    assert ((y == 0).all(axis=(1, 2)) | kept).all()               # a sample is dropped whole or kept whole
    np.testing.assert_allclose(y[kept], np.asarray(x)[kept] / (1 - rate), rtol=1e-6)   # survivors rescaled
    counts = np.array([n - kept.sum(), kept.sum()])
    assert _chi_square(counts, np.array([rate, 1 - rate])) < CHI2_999[1]   # P(keep) = 1 - rate
    # Independent of the position in the batch: both halves keep at the same rate.
    assert abs(kept[: n // 2].mean() - kept[n // 2:].mean()) < 4 * np.sqrt(2 * rate * (1 - rate) / (n // 2))
    # Not in inference, and not at rate 0.
    np.testing.assert_array_equal(np.asarray(drop_path(x, rate, None)), np.asarray(x))
    np.testing.assert_array_equal(np.asarray(drop_path(x, 0.0, jax.random.key(1))), np.asarray(x))
