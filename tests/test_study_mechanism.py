"""The ring-ablation study's pieces: the `mk_a_scale` variant of the decay, the memory length computed
from a decay sequence, the bundled held-out Gray6 set, and the committed results rebuilt from runs.csv."""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lsm_jax.model.network import LSM, capture
from lsm_jax.model.variants import network_config
from lsm_jax.studies.mechanism import efolding, memory_lengths

RESULTS = Path(__file__).resolve().parents[1] / "experiments" / "results" / "studies" / "ring_ablation"


def test_memory_length_of_a_constant_decay_by_hand():
    # |a| = 0.5: 0.5 > 1/e, 0.25 < 1/e -> 2 tokens; |a| = 0.9: 0.9^9 = 0.387 > 1/e, 0.9^10 = 0.349 -> 10.
    decay = np.stack([np.full(40, 0.5), np.full(40, 0.9)], axis=1)
    k, censored = memory_lengths(decay)
    assert (k[:30, 0] == 2).all() and (k[:25, 1] == 10).all()
    assert not censored[:30].any()
    # Near the end the sequence runs out first: censored at the tokens that were left.
    assert censored[39].all() and k[39].tolist() == [0, 0]
    assert k[35, 1] == 4 and censored[35, 1]


def test_memory_length_follows_a_varying_decay():
    # Written at t = 0, multiplied by a[1], a[2], ...: 0.9 · 0.9 · 0.1 -> below 1/e at the 3rd token after.
    decay = np.array([[0.5], [0.9], [0.9], [0.1], [0.99], [0.99]])
    k, censored = memory_lengths(decay)
    assert k[0, 0] == 3 and not censored[0, 0]
    assert k[2, 0] == 1                       # a[3] = 0.1 at once
    assert k[3, 0] == 2 and censored[3, 0]    # 0.99 · 0.99 never reaches 1/e: two tokens left, censored


def test_efolding_length_by_hand():
    # −1/ln|a|: 1/e lasts one token, 0.5 lasts 1/ln 2 = 1.4427, 0.99 lasts 99.5; a complex a by its modulus.
    got = efolding(np.array([math.exp(-1.0), 0.5, 0.99, 0.6j]))
    np.testing.assert_allclose(got, [1.0, 1.0 / math.log(2.0), -1.0 / math.log(0.99), -1.0 / math.log(0.6)])
    assert efolding(np.array([0.0]))[0] < 1e-2 and np.isfinite(efolding(np.array([1.0]))).all()


def _decay_and_mk(scale: float):
    cfg = network_config("tiny", 2)
    cfg.update(embed_dim=32, num_tokens=16, d_state=4, depth=[2], num_heads=[2], semantics="paper",
               mk_a_scale=scale)
    model = LSM(cfg, rngs=nnx.Rngs(3))
    x = jax.random.uniform(jax.random.key(0), (1, 12, 12, 3))
    with jax.default_matmul_precision("highest"):
        _, acts = capture(model, x)
    block = acts["cml_blocks"][0]
    core = model.layers[0].blocks[1].lru.lru_core
    mk_sorted = jnp.take_along_axis(block["Mk"], block["sort_idx"][..., None], axis=1)
    return np.asarray(block["lru_lambda_eff"]), np.asarray(core.eigenvalues()), np.asarray(mk_sorted[..., :4])


def test_mk_a_scale_default_is_the_authors_decay_and_the_variant_rescales_and_clips():
    got, lam, mk_a = _decay_and_mk(1.0)
    np.testing.assert_allclose(got, lam * mk_a, rtol=1e-6, atol=1e-7)
    got16, lam16, mk_a16 = _decay_and_mk(16.0)
    want = lam16 * np.minimum(16.0 * mk_a16, 1.0)
    np.testing.assert_allclose(got16, want, rtol=1e-6, atol=1e-7)
    assert np.abs(got16).mean() > 4 * np.abs(got).mean()     # the point of the variant: λ's memory survives
    assert (np.abs(got16) <= np.abs(lam16) + 1e-6).all()      # and stays a stable recurrence


def test_mk_a_scale_must_be_positive():
    cfg = network_config("tiny", 2)
    cfg.update(depth=[2], num_heads=[2], mk_a_scale=0.0)
    with pytest.raises(ValueError, match="mk_a_scale must be > 0"):
        nnx.eval_shape(lambda: LSM(cfg, rngs=nnx.Rngs(0)))


def test_gray6_is_bundled_and_scored_with_lr_made_on_the_fly():
    from lsm_jax.evaluation.benchmarks import resolve_benchmark_dir
    from lsm_jax.evaluation.scoring import find_pairs
    from lsm_jax.data.sources import EMBEDDED_NAMES
    name, pairs, on_the_fly = find_pairs(resolve_benchmark_dir("data/Gray6"), 2)
    assert name == "Gray6" and on_the_fly and len(pairs) == 6
    assert not {p.name for p in pairs} & set(EMBEDDED_NAMES)   # held out from the training source


def test_committed_ring_ablation_report_is_rebuilt_from_its_runs():
    from experiments import ring_ablation
    assert ring_ablation.check(RESULTS) == []
