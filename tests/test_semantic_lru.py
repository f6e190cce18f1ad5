"""One CML block's SemanticLRU under `paper` semantics against an independent NumPy float64 computation.

`paper` (the training default) sorts each image's tokens by category, gathers Mk into that sorted
order with the *forward* permutation, runs the complex recurrence along the sorted tokens of each
image (no batch mean of Mk_A), and scatters back with the inverse permutation. Every step is written
out here from the module's parameters, so a wrong permutation, axis or modulation shows.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lsm_jax.model.network import LSM
from lsm_jax.model.smu import SemanticLRU
from lsm_jax.model.variants import network_config

B, H, W, C, T, N = 2, 4, 6, 32, 16, 4      # batch, LR height/width, embed, prototypes, LRU states


def _np(v) -> np.ndarray:
    return np.asarray(v[...], np.float64)


def _l2(x):
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _depthwise3x3(x, kernel, bias):
    """x (B, H, W, C), kernel (3, 3, 1, C): zero-padded 'same' depthwise correlation."""
    p = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = sum(p[:, dy:dy + x.shape[1], dx:dx + x.shape[2]] * kernel[dy, dx, 0] for dy in range(3) for dx in range(3))
    return out + bias


def numpy_semantic_lru(m: SemanticLRU, u: np.ndarray, protos: np.ndarray):
    """(output (B, L, C), categories (B, L), sort order (B, L), logit margin) in float64."""
    b, l, c = u.shape
    # SMU: cosine similarity with a clamped learned temperature, softmax over prototypes.
    q = _l2(u @ _np(m.wq.kernel) + _np(m.wq.bias))
    k = _l2(protos @ _np(m.wk.kernel) + _np(m.wk.bias))
    logits = q @ k.T * (1.0 + np.clip(_np(m.scale), 0.0, 1.0) * math.log(T))    # (B, L, T)
    mk = np.exp(logits - logits.max(-1, keepdims=True))
    mk /= mk.sum(-1, keepdims=True)
    enhanced = mk @ (protos @ _np(m.wv.kernel) + _np(m.wv.bias))                # Mk·V, (B, L, C/2)
    category = logits.argmax(-1)
    top2 = np.sort(logits, -1)[..., -2:]
    order = np.argsort(category, axis=-1, kind="stable")                         # sorted[j] = raster[order[j]]
    inverse = np.argsort(order, axis=-1)
    # Gated input projection: 1×1 conv, then ⊙ sigmoid(depthwise 3×3 conv).
    g = u.reshape(b, H, W, c) @ _np(m.in_proj.kernel)[0, 0] + _np(m.in_proj.bias)
    g = g / (1.0 + np.exp(-_depthwise3x3(g, _np(m.CPE.kernel), _np(m.CPE.bias))))
    g = g.reshape(b, l, c)
    rows = np.arange(b)[:, None]
    us, mk_s = g[rows, order], mk[rows, order]                                   # the forward permutation
    mk_a, mk_b, mk_cre, mk_cim = np.split(mk_s, 4, axis=-1)
    core = m.lru_core
    lam = np.exp(-np.exp(_np(core.nu_log))) * np.exp(1j * np.exp(_np(core.theta_log)))     # (N,)
    gamma = np.exp(_np(core.gamma_log))
    x = mk_b * (us @ (gamma[:, None] * (_np(core.B_re) + 1j * _np(core.B_im))).T)          # (B, L, N)
    a = lam * mk_a                                               # each image its own Mk_A (no batch mean)
    h = np.empty_like(x)
    h[:, 0] = x[:, 0]
    for j in range(1, l):                                        # along each image's sorted tokens
        h[:, j] = a[:, j] * h[:, j - 1] + x[:, j]
    ys = (h.real * mk_cre) @ _np(core.C_re).T - (h.imag * mk_cim) @ _np(core.C_im).T + us @ _np(core.D).T
    y = ys[rows, inverse]
    out = np.concatenate([y @ _np(m.out_proj.kernel) + _np(m.out_proj.bias), enhanced], axis=-1)
    return out, category, order, float((top2[..., 1] - top2[..., 0]).min())


def _module_with_numpy_parameters(rng: np.random.Generator, rmin=0.9, rmax=0.99, max_phase=6.283):
    """A SemanticLRU whose parameters are drawn here (no eager JAX initialisation: it compiles op by op).

    Scaled as the golden fixture's (spec §13), so that the recurrence and the modulations move the
    output well above float32 noise: B and C ×8, SMU scale across its [0, 1] clamp.
    """
    graphdef, state = nnx.split(nnx.eval_shape(
        lambda: SemanticLRU(C, T, N, rmin=rmin, rmax=rmax, max_phase=max_phase, rngs=nnx.Rngs(0))))
    modulus_sq = rng.uniform(rmin ** 2, rmax ** 2, N)
    special = dict(scale=rng.uniform(-0.5, 1.5, T),
                   nu_log=np.log(-0.5 * np.log(modulus_sq)), theta_log=np.log(max_phase * rng.uniform(size=N)),
                   gamma_log=np.log(np.sqrt(1 - modulus_sq)),
                   **{f"B_{part}": rng.normal(0, 8 / math.sqrt(2 * C), (N, C)) for part in ("re", "im")},
                   **{f"C_{part}": rng.normal(0, 8 / math.sqrt(N), (C, N)) for part in ("re", "im")})

    def draw(path, leaf):
        name = path[-1].key
        if name in special:
            value = special[name]
        elif name == "bias":
            value = rng.normal(0, 0.1, leaf.shape)
        else:  # kernels and D: N(0, 1/fan_in), fan_in = every axis but the last
            fan_in = int(np.prod(leaf.shape[:-1])) if len(leaf.shape) > 1 else 1
            value = rng.normal(0, 1 / math.sqrt(fan_in), leaf.shape)
        return jnp.asarray(value, jnp.float32)

    params = jax.tree_util.tree_map_with_path(draw, nnx.to_pure_dict(state))
    nnx.replace_by_pure_dict(state, params)
    return nnx.merge(graphdef, state)


def test_paper_semantics_matches_numpy():
    cfg = network_config("tiny", 2)
    cfg.update(embed_dim=C, num_tokens=T, d_state=N, depth=[2], num_heads=[2], semantics="paper")
    # The semantics exactly as a network built from this config hands them to its CML block.
    semantics = nnx.eval_shape(lambda: LSM(cfg, rngs=nnx.Rngs(0))).layers[0].blocks[1].semantics
    rng = np.random.default_rng(0)
    module = _module_with_numpy_parameters(rng)
    u = rng.normal(size=(B, H * W, C)).astype(np.float32)
    protos = rng.normal(size=(T, C)).astype(np.float32)
    want, category, order, margin = numpy_semantic_lru(module, u.astype(np.float64), protos.astype(np.float64))
    # Preconditions that make the comparison sharp: no near-tie can flip a category between float32
    # and float64; several categories per image; a sort order that is not its own inverse (so gathering
    # Mk with the inverse permutation differs from gathering it with the forward one).
    assert margin > 1e-4
    assert all(len(np.unique(c)) >= 4 for c in category)
    assert (order != np.argsort(order, axis=-1)).any()
    graphdef, params = nnx.split(module)
    forward = jax.jit(lambda p, x, t: nnx.merge(graphdef, p)(x, t, (H, W), semantics))
    with jax.default_matmul_precision("highest"):
        got = np.asarray(forward(params, jnp.asarray(u), jnp.asarray(protos)))
    assert got.shape == (B, H * W, C)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5)
