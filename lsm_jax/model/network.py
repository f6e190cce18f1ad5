"""The LSM network family (spec §1–2): LSM and LSM-S (classic tail) and LSM-light (one-step tail).

The body is residual groups of blocks that alternate a WMS block (window attention + gated MLP,
even positions) and a CML block (semantic LRU + gated MLP, odd positions).

    model = LSM(network_config('lsm_light', 4), rngs=nnx.Rngs(0))
    y = model(x)                               # x (B, H, W, 3) in [0, 1] -> y (B, 4H, 4W, 3)
    y = model(x, train=True, key=key)          # drop path and Gumbel categorisation
    y, acts = capture(model, x)                # and the intermediates the golden fixture records

Shapes (legend in `lsm_jax.model.layers`): images (B, H, W, Cin) in and (B, sH, sW, Cin) out;
between the head and the tail, tokens (B, L, C) in raster order and feature maps (B, H, W, C).

Intermediates: the modules `sow` (`lsm_jax.model.layers.sow`) what the golden fixture records, and
only under `nnx.capture`; `capture` runs the network so and names them as the fixture does. Outside
it a sow is a no-op that computes nothing: the jitted training and inference programs are unchanged.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lsm_jax.model.activation_axes import IMAGE, TOKENS, constrain
from lsm_jax.model.extent import Extent, zero_outside
from lsm_jax.model.layers import Conv, GatedMLP, LayerNorm, drop_path, param, pixel_shuffle, sow
from lsm_jax.model.semantics import Semantics, resolve_semantics
from lsm_jax.model.smu import SemanticLRU
from lsm_jax.scan.spec import ScanSpec, scan_spec
from lsm_jax.model.window_attention import WindowAttention, is_shifted

RGB_MEAN = (0.4488, 0.4371, 0.4040)   # subtracted from RGB inputs; gray (1-channel) models use 0
IN_CHANS = (1, 3)
NUM_FEAT = 64   # the classic tail's feature width, fixed in the reference


class WMSBlock(nnx.Module):
    """Window attention + gated MLP with the γ-scaled input skip (torch `L_SA`). Sows `output`."""

    def __init__(self, cfg, heads: int, shifted: bool, drop_rate: float, *, dtype, rngs: nnx.Rngs):
        dim = cfg.embed_dim
        self.shifted = shifted
        self.drop_rate = drop_rate
        self.norm1 = LayerNorm(dim, names=('embed',))
        self.attn = WindowAttention(dim, heads, tuple(cfg.split_size), dtype=dtype, rngs=rngs)
        self.norm2 = LayerNorm(dim, names=('embed',))
        self.mlp = GatedMLP(dim, int(dim * cfg.mlp_ratio), dtype=dtype, rngs=rngs)
        self.gamma = param(jnp.full((dim,), 1e-4, jnp.float32), ('embed',))

    def __call__(self, t: jax.Array, hw: tuple[int, int], key: jax.Array | None = None,
                 extent: Extent | None = None) -> jax.Array:
        """t (B, L, C) raster tokens of an H×W map -> (B, L, C). `key`: drop path (training)."""
        k1, k2 = jax.random.split(key) if key is not None else (None, None)
        x = t + drop_path(self.attn(self.norm1(t), hw, self.shifted, extent), self.drop_rate, k1)
        x = x + drop_path(self.mlp(self.norm2(x), hw, extent), self.drop_rate, k2)
        out = x + t * self.gamma[...]
        sow(self, output=out)
        return out


class CMLBlock(nnx.Module):
    """Semantic LRU + gated MLP with the γ-scaled input skip; owns the prototype dictionary (T, C).
    Sows `output`."""

    def __init__(self, cfg, semantics: Semantics, scan: ScanSpec, drop_rate: float, *, dtype, rngs: nnx.Rngs):
        dim, t = cfg.embed_dim, cfg.num_tokens
        self.semantics = semantics
        self.scan = scan
        self.drop_rate = drop_rate
        self.norm3 = LayerNorm(dim, names=('embed',))
        self.embedding = param(jax.random.uniform(rngs.params(), (t, dim), jnp.float32, -1 / t, 1 / t),
                               ('prototypes', 'embed'))
        self.lru = SemanticLRU(dim, t, cfg.d_state, rmin=cfg.rmin, rmax=cfg.rmax, max_phase=cfg.max_phase,
                               gamma=cfg.get('lru_gamma', 'learned'), mk_a_scale=cfg.get('mk_a_scale', 1.0),
                               dtype=dtype, rngs=rngs)
        self.norm4 = LayerNorm(dim, names=('embed',))
        self.mlp = GatedMLP(dim, int(dim * cfg.mlp_ratio), dtype=dtype, rngs=rngs)
        self.gamma = param(jnp.full((dim,), 1e-4, jnp.float32), ('embed',))

    def __call__(self, t: jax.Array, hw: tuple[int, int], key: jax.Array | None = None,
                 extent: Extent | None = None) -> jax.Array:
        """t (B, L, C) raster tokens of an H×W map -> (B, L, C). `key`: drop path and Gumbel
        categorisation (training)."""
        k1, k2, k3 = jax.random.split(key, 3) if key is not None else (None, None, None)
        mixed = self.lru(self.norm3(t), self.embedding[...], hw, self.semantics, self.scan, key=k3,
                         extent=extent)
        x = t + drop_path(mixed, self.drop_rate, k1)
        x = x + drop_path(self.mlp(self.norm4(x), hw, extent), self.drop_rate, k2)
        out = x + t * self.gamma[...]
        sow(self, output=out)
        return out


def _run_block(block, t, hw, key, extent):
    return block(t, hw, key, extent=extent)


class ResidualGroup(nnx.Module):
    """`depth` alternating WMS/CML blocks followed by a 3×3 conv, with a residual around the group.
    Sows `output`."""

    def __init__(self, cfg, group: int, drop_rates, semantics: Semantics, scan: ScanSpec, *, dtype,
                 rngs: nnx.Rngs):
        heads = cfg.num_heads[group]
        self.remat = bool(cfg.remat)
        self.blocks = nnx.List([
            WMSBlock(cfg, heads, is_shifted(group, j), drop_rates[j], dtype=dtype, rngs=rngs) if j % 2 == 0
            else CMLBlock(cfg, semantics, scan, drop_rates[j], dtype=dtype, rngs=rngs)
            for j in range(cfg.depth[group])])
        self.conv = Conv(cfg.embed_dim, cfg.embed_dim, 3, dtype=dtype, rngs=rngs)

    def __call__(self, t: jax.Array, hw: tuple[int, int], key: jax.Array | None = None,
                 extent: Extent | None = None) -> jax.Array:
        """t (B, L, C) raster tokens of an H×W map -> (B, L, C)."""
        b, l, c = t.shape
        res = t
        run = nnx.remat(_run_block, static_argnums=(2,)) if self.remat else _run_block
        for j, block in enumerate(self.blocks):
            block_key = jax.random.fold_in(key, j) if key is not None else None
            t = constrain(run(block, t, hw, block_key, extent), TOKENS)
        out = res + self.conv(zero_outside(t.reshape(b, *hw, c), extent)).reshape(b, l, c)
        sow(self, output=out)
        return out


class LSM(nnx.Module):
    """LSM / LSM-S (`arch='LSM'`, classic tail) and LSM-light (`arch='LSM_light'`, one-step tail).
    Sows `conv_first_output`, `before_rg`, `final_norm` and `body_plus_skip`."""

    def __init__(self, cfg, *, rngs: nnx.Rngs):
        if cfg.arch not in ('LSM', 'LSM_light'):
            raise ValueError(f"arch must be 'LSM' or 'LSM_light', got {cfg.arch!r}")
        if len(cfg.depth) != len(cfg.num_heads):
            raise ValueError(f"depth {list(cfg.depth)} and num_heads {list(cfg.num_heads)} differ in length")
        if cfg.upscale not in (2, 3, 4):
            raise ValueError(f"upscale must be 2, 3 or 4, got {cfg.upscale}")
        if cfg.in_chans not in IN_CHANS:
            raise ValueError(f"in_chans must be 1 (gray) or 3 (RGB), got {cfg.in_chans}")
        if cfg.embed_dim < 32:
            raise ValueError(f"embed_dim must be ≥ 32 (position-bias width ≥ 1), got {cfg.embed_dim}")
        self.semantics = resolve_semantics(cfg)   # resolved here once, handed to every CML block
        self.scan = scan_spec(cfg.scan)
        dtype = jnp.dtype(cfg.dtype)
        dim = cfg.embed_dim
        self.arch = cfg.arch
        self.scale = int(cfg.upscale)
        self.img_range = float(cfg.img_range)
        self.in_chans = int(cfg.in_chans)
        # The SwinIR-family convention the reference follows: the DIV2K RGB mean for 3 channels, none
        # for any other channel count.
        self.mean = RGB_MEAN if self.in_chans == 3 else (0.0,) * self.in_chans
        rates = np.linspace(0.0, cfg.drop_path_rate, sum(cfg.depth)).tolist()
        starts = np.cumsum([0] + list(cfg.depth)).tolist()

        self.conv_first = Conv(cfg.in_chans, dim, 3, names=(None, 'embed'), dtype=dtype, rngs=rngs)
        self.before_norm = LayerNorm(dim, names=('embed',))
        self.layers = nnx.List([
            ResidualGroup(cfg, g, rates[starts[g]:starts[g + 1]], self.semantics, self.scan, dtype=dtype,
                          rngs=rngs)
            for g in range(len(cfg.depth))])
        self.norm = LayerNorm(dim, names=('embed',))
        self.conv_after_body = Conv(dim, dim, 3, dtype=dtype, rngs=rngs)
        s = self.scale
        if cfg.arch == 'LSM':
            self.conv_before_upsample = Conv(dim, NUM_FEAT, 3, names=('embed', 'feat'), dtype=dtype, rngs=rngs)
            stages = [(4, 2)] * int(np.log2(s)) if s in (2, 4) else [(9, 3)]
            self.upsample = nnx.List([Conv(NUM_FEAT, r2 * NUM_FEAT, 3, names=('feat', 'feat'), dtype=dtype,
                                           rngs=rngs) for r2, _ in stages])
            self.shuffle_factors = tuple(r for _, r in stages)
            self.conv_last = Conv(NUM_FEAT, cfg.in_chans, 3, names=('feat', None), dtype=dtype, rngs=rngs)
        else:
            self.upsample = nnx.List([Conv(dim, cfg.in_chans * s * s, 3, names=('embed', None), dtype=dtype,
                                           rngs=rngs)])
            self.shuffle_factors = (s,)

    def __call__(self, x: jax.Array, *, train: bool = False, key: jax.Array | None = None,
                 extent: Extent | None = None) -> jax.Array:
        """x: (B, H, W, Cin) in [0, 1] -> (B, sH, sW, Cin), not clamped.

        `train=True` needs `key` (drop path, Gumbel categorisation). `capture(model, x)` runs it and
        also returns the intermediate activations the golden fixture records.
        `extent`: x is an image padded to a larger (bucket) shape, whose real part is the top-left
        `extent`; the output's top-left (s·h, s·w) then equals the forward of the real image alone
        (`lsm_jax.model.extent`). Inference only.
        """
        if extent is not None and train:
            raise ValueError("extent (a padded input) is for inference; train on exact shapes")
        if train and key is None:
            raise ValueError("train=True needs a PRNG key (drop path and Gumbel categorisation)")
        if x.ndim != 4 or x.shape[-1] != self.in_chans:
            raise ValueError(f"input must be (B, H, W, {self.in_chans}), got shape {x.shape}")
        key = key if train else None
        b, h, w, _ = x.shape
        mean = jnp.asarray(self.mean, jnp.float32)
        x0 = (x.astype(jnp.float32) - mean) * self.img_range
        f = constrain(self.conv_first(zero_outside(x0, extent)).astype(jnp.float32), IMAGE)
        t = self.before_norm(f.reshape(b, h * w, -1))                        # (B, L, C)
        sow(self, conv_first_output=f, before_rg=t)   # not `conv_first`: a sown name must not be a submodule's
        for g, group in enumerate(self.layers):
            group_key = jax.random.fold_in(key, g) if key is not None else None
            t = group(t, (h, w), group_key, extent=extent)
        t = self.norm(t)
        feat = constrain(self.conv_after_body(zero_outside(t.reshape(b, h, w, -1), extent)) + f, IMAGE)
        sow(self, final_norm=t, body_plus_skip=feat)
        if self.arch == 'LSM':
            y = jax.nn.leaky_relu(self.conv_before_upsample(zero_outside(feat, extent)), 0.01)
            reached = 1
            for conv, r in zip(self.upsample, self.shuffle_factors):
                y = pixel_shuffle(conv(zero_outside(y, extent, reached)), r)
                reached *= r
            y = self.conv_last(zero_outside(y, extent, reached))
        else:
            y = pixel_shuffle(self.upsample[0](zero_outside(feat, extent)), self.scale)
        return y.astype(jnp.float32) / self.img_range + mean


def capture(model: LSM, x: jax.Array, **kwargs) -> tuple[jax.Array, dict]:
    """`model(x, **kwargs)` (B, sH, sW, Cin) and the intermediates its modules sow, named as the
    golden fixture names them (spec §13), as arrays in the layout the network computes them:

        act/conv_first, act/body_plus_skip                (B, H, W, C)
        act/before_rg, act/rg{g}, act/rg{g}_blk{j},
        act/rg{g}_blk{j}_attn (WMS blocks), act/final_norm  (B, L, C)
        cml_blocks      one dict per CML block, in network order: smu_input (B, L, C), Mk (B, L, T),
                        category and sort_idx (B, L) int32, lru_input_sorted, lru_output_sorted and
                        lru_unsorted_before_out_proj (B, L, C), output (B, L, C), and the LRU's
                        lru_Bu, lru_lambda_eff and lru_states (B, L, N) complex, in sorted order

    It runs a copy of `model` that shares its parameters, so that the model is left as it was and
    a jitted function may capture on a model from outside it (`lsm_jax.studies.eigen.capture_cml`).
    """
    graphdef, state = nnx.split(model)
    y, sown = nnx.capture(nnx.merge(graphdef, state), nnx.Intermediate)(x, **kwargs)
    acts, cml = {}, {}
    for path, var in nnx.to_flat_state(sown):
        value = var.get_value()
        match path:
            case (name,):
                acts['act/conv_first' if name == 'conv_first_output' else f'act/{name}'] = value
            case ('layers', g, 'output'):
                acts[f'act/rg{g}'] = value
            case ('layers', g, 'blocks', j, 'output'):
                acts[f'act/rg{g}_blk{j}'] = value
            case ('layers', g, 'blocks', j, 'attn', 'output'):
                acts[f'act/rg{g}_blk{j}_attn'] = value
            case ('layers', g, 'blocks', j, 'lru', name) | ('layers', g, 'blocks', j, 'lru', 'lru_core', name):
                cml.setdefault((g, j), {})[name] = value
            case _:
                raise AssertionError(f"an intermediate capture does not name: {path}")
    if cml:
        acts['cml_blocks'] = [cml[k] for k in sorted(cml)]
    return y, acts


def count_parameters(cfg) -> int:
    """Trainable parameter count of a config, from abstract shapes only (no real initialisation)."""
    abstract = nnx.eval_shape(lambda: LSM(cfg, rngs=nnx.Rngs(0)))
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(nnx.state(abstract, nnx.Param)))

