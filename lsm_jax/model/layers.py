"""Building blocks shared by the LSM modules: linear, convolution, LayerNorm, the gated MLP, DropPath,
and `sow`, which records an intermediate activation when the network runs under `network.capture`.

Axis legend of every shape in `lsm_jax.model` (docstrings and comments):

    B       batch
    H, W    height and width of the LR feature map (the input image's size, or its padded bucket)
    L       = H·W tokens in raster (row-major) order
    Cin     image channels (`in_chans`: 3 RGB, 1 gray)
    C       embed_dim, the channels of the token and feature maps
    F       the classic tail's feature width (NUM_FEAT = 64)
    s       the upscale factor (2, 3, 4); r a pixel-shuffle factor
    Hd      the MLP hidden width int(C·mlp_ratio); Hd/2 its gated half
    T       prototypes of the SMU dictionary (`num_tokens`), i.e. the categories of the tokens
    N       LRU states (`d_state` = T/4)
    Hp, Wp  the map padded to a multiple of the window; hs×ws a window, n = hs·ws tokens in it,
            nW = (Hp/hs)·(Wp/ws) windows; heads per branch, d = (C/2)/heads the head width
    P       relative offsets within a window, (2hs−1)·(2ws−1)

Parameters carry *logical* axis names in their `out_sharding` metadata (never mesh axes): the
training code maps them onto a device mesh through one table of rules (`lsm_jax.training.sharding`).
Logical names: 'embed' (C), 'mlp' (expanded widths: MLP hidden, qkv), 'prototypes' (T),
'state' (N), 'conv_spatial' (3×3 kernel taps), 'feat' (F), None (small vectors).

Initialisers follow the reference (spec §7): Linear weights truncated normal (std 0.02), biases 0;
convolutions torch's default kaiming-uniform (bound 1/sqrt(fan_in)) for weights and biases.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from lsm_jax.model.extent import Extent, zero_outside

Names = tuple[str | None, ...]


def _record(_previous, value):
    return value() if callable(value) else value


def sow(module: nnx.Module, **values) -> None:
    """Records each keyword as an `nnx.Intermediate` of `module` when the call runs under
    `nnx.capture` (`lsm_jax.model.network.capture`); otherwise does nothing. A value may be a function
    of no arguments, called only when recorded, so that what only a capture needs is never computed
    (nor traced) otherwise. A second value of the same name replaces the first."""
    for name, value in values.items():
        module.sow(nnx.Intermediate, name, value, reduce_fn=_record, capture_noop=True)


def param(value: jax.Array, names: Names | None = None) -> nnx.Param:
    """An `nnx.Param` annotated with logical axis names (no mesh needed at creation)."""
    names = names if names is not None else (None,) * value.ndim
    return nnx.Param(value, out_sharding=names, eager_sharding=False)


def trunc_normal(key: jax.Array, shape: Sequence[int], std: float = 0.02) -> jax.Array:
    """torch.nn.init.trunc_normal_(std=std, a=-2, b=2): the cut is at ±2 absolute, i.e. ±2/std σ."""
    bound = 2.0 / std
    return std * jax.random.truncated_normal(key, -bound, bound, shape, jnp.float32)


def kaiming_uniform(key: jax.Array, shape: Sequence[int], fan_in: int) -> jax.Array:
    """torch's default Conv/Linear init (kaiming_uniform with a=√5): U(±1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)
    return jax.random.uniform(key, shape, jnp.float32, -bound, bound)


def gelu_exact(x: jax.Array) -> jax.Array:
    """Exact (erf) GELU, as torch's default. Written out: faster than jax.nn.gelu on XLA:CPU."""
    return 0.5 * x * (1.0 + jax.lax.erf(x * (1.0 / math.sqrt(2.0))))


class Linear(nnx.Module):
    """y = x @ kernel + bias, kernel (in, out). Computes in `dtype`, parameters stay float32."""

    def __init__(self, din: int, dout: int, *, names: Names = (None, None), use_bias: bool = True,
                 dtype=jnp.float32, rngs: nnx.Rngs):
        self.kernel = param(trunc_normal(rngs.params(), (din, dout)), names)
        self.bias = param(jnp.zeros((dout,), jnp.float32), (names[1],)) if use_bias else None
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        """x (..., din) -> (..., dout) in `dtype`."""
        y = jnp.dot(x.astype(self.dtype), self.kernel[...].astype(self.dtype))
        if self.bias is not None:
            y = y + self.bias[...].astype(self.dtype)
        return y


class LayerNorm(nnx.Module):
    """LayerNorm over the last axis with eps 1e-5 (torch default), statistics in float32."""

    def __init__(self, dim: int, *, names: Names = (None,)):
        self.scale = param(jnp.ones((dim,), jnp.float32), names)
        self.bias = param(jnp.zeros((dim,), jnp.float32), names)

    def __call__(self, x: jax.Array) -> jax.Array:
        """x (..., dim) -> (..., dim), in x's dtype."""
        y = layer_norm(x.astype(jnp.float32), self.scale[...], self.bias[...])
        return y.astype(x.dtype) if x.dtype != jnp.float32 else y


def _normalise(x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    mean = jnp.mean(x, axis=-1, keepdims=True)
    centred = x - mean
    rstd = jax.lax.rsqrt(jnp.mean(jnp.square(centred), axis=-1, keepdims=True) + 1e-5)
    return centred * rstd, mean, rstd


@jax.custom_vjp
def layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array) -> jax.Array:
    """float32 LayerNorm over the last axis, with the closed-form gradient: autodiff of the two means
    makes several more passes over x on XLA:CPU, and every block normalises several times."""
    return _normalise(x)[0] * scale + bias


def _layer_norm_fwd(x, scale, bias):
    xhat, mean, rstd = _normalise(x)
    return xhat * scale + bias, (x, mean, rstd, scale)


def _layer_norm_bwd(residuals, g):
    x, mean, rstd, scale = residuals
    xhat = (x - mean) * rstd
    gx = g * scale
    dx = rstd * (gx - jnp.mean(gx, axis=-1, keepdims=True) - xhat * jnp.mean(gx * xhat, axis=-1, keepdims=True))
    batch_axes = tuple(range(x.ndim - 1))
    return dx, jnp.sum(g * xhat, axis=batch_axes), jnp.sum(g, axis=batch_axes)


layer_norm.defvjp(_layer_norm_fwd, _layer_norm_bwd)


class Conv(nnx.Module):
    """k×k 'same' convolution, NHWC input, HWIO kernel, zero padding k//2, stride 1."""

    def __init__(self, din: int, dout: int, kernel_size: int = 3, *, names: Names = ('embed', 'embed'),
                 dtype=jnp.float32, rngs: nnx.Rngs):
        fan_in = din * kernel_size * kernel_size
        spatial = 'conv_spatial' if kernel_size > 1 else None
        self.kernel = param(kaiming_uniform(rngs.params(), (kernel_size, kernel_size, din, dout), fan_in),
                            (spatial, spatial) + tuple(names))
        self.bias = param(kaiming_uniform(rngs.params(), (dout,), fan_in), (names[1],))
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        """x (B, H, W, din) -> (B, H, W, dout) in `dtype`."""
        k = self.kernel.shape[0]
        if k == 1:
            y = jnp.dot(x.astype(self.dtype), self.kernel[...][0, 0].astype(self.dtype))
        else:
            y = jax.lax.conv_general_dilated(
                x.astype(self.dtype), self.kernel[...].astype(self.dtype), (1, 1),
                [(k // 2, k // 2)] * 2, dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
        return y + self.bias[...].astype(self.dtype)


class DepthwiseConv3x3(nnx.Module):
    """Depthwise 3×3 'same' convolution (groups = channels), kernel (3, 3, 1, C) as Flax stores it.

    On the CPU it is nine shifted multiply-adds (XLA:CPU runs that ~50× faster than a grouped
    convolution). Elsewhere (TPU, GPU) it is one grouped convolution (`feature_group_count` = C) at
    HIGHEST precision, so float32 stays float32: the multiply-add form's backward writes nine full-size
    arrays per block, which made it the largest source line of the LSM-S step's roofline on a v5p
    (docs/pod.md). `lax.platform_dependent` picks the form when the program is lowered, so a TPU program
    compiled on a CPU host (`lsm-pod-plan`) gets the TPU form.
    """

    def __init__(self, channels: int, *, names: Names = ('embed',), dtype=jnp.float32, rngs: nnx.Rngs):
        self.kernel = param(kaiming_uniform(rngs.params(), (3, 3, 1, channels), 9),
                            ('conv_spatial', 'conv_spatial', None) + tuple(names))
        self.bias = param(kaiming_uniform(rngs.params(), (channels,), 9), tuple(names))
        self.dtype = dtype

    def __call__(self, x: jax.Array) -> jax.Array:
        """x: (B, H, W, C) -> (B, H, W, C)."""
        x = x.astype(self.dtype)
        kernel = self.kernel[...].astype(self.dtype)
        out = jax.lax.platform_dependent(x, kernel, cpu=depthwise_shifted, default=depthwise_grouped)
        return out + self.bias[...].astype(self.dtype)


def depthwise_shifted(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """x (B, H, W, C) ⋆ kernel (3, 3, 1, C), zero-padded 'same': nine shifted multiply-adds."""
    _, h, w, _ = x.shape
    padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = None
    for dy in range(3):
        for dx in range(3):
            term = padded[:, dy:dy + h, dx:dx + w, :] * kernel[dy, dx, 0]
            out = term if out is None else out + term
    return out


def depthwise_grouped(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """The same as one grouped convolution (a group per channel) at HIGHEST precision."""
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)),
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                        feature_group_count=x.shape[-1], precision=jax.lax.Precision.HIGHEST)


class GatedMLP(nnx.Module):
    """The gated MLP of both block types (spec §3.2), prefix `mlp.`.

    z = GELU(fc1(u)) (B, L, Hd); z1, z2 = halves (B, L, Hd/2); z2 = dwconv(LN(z2)); out = fc2(z1 * z2).
    """

    def __init__(self, dim: int, hidden: int, *, dtype=jnp.float32, rngs: nnx.Rngs):
        if hidden % 2:
            raise ValueError(f"MLP hidden width int(C·mlp_ratio) must be even, got {hidden}")
        half = hidden // 2
        self.fc1 = Linear(dim, hidden, names=('embed', 'mlp'), dtype=dtype, rngs=rngs)
        self.sg_norm = LayerNorm(half, names=('mlp',))
        self.sg_conv = DepthwiseConv3x3(half, names=('mlp',), dtype=dtype, rngs=rngs)
        self.fc2 = Linear(half, dim, names=('mlp', 'embed'), dtype=dtype, rngs=rngs)

    def __call__(self, u: jax.Array, hw: tuple[int, int], extent: Extent | None = None) -> jax.Array:
        """u: (B, L, C) raster tokens of an H×W map -> (B, L, C). `extent`: the real image inside a
        padded map (`lsm_jax.model.extent`)."""
        b, l, _ = u.shape
        z = gelu_exact(self.fc1(u))
        z1, z2 = jnp.split(z, 2, axis=-1)
        z2 = self.sg_conv(zero_outside(self.sg_norm(z2).reshape(b, *hw, -1), extent)).reshape(b, l, -1)
        return self.fc2(z1 * z2)


def drop_path(x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
    """Stochastic depth on x (B, ...): zero whole samples with probability `rate`, rescale the rest
    (training only; `key` None is the identity)."""
    if key is None or rate == 0.0:
        return x
    keep = 1.0 - rate
    mask = jax.random.bernoulli(key, keep, (x.shape[0],) + (1,) * (x.ndim - 1))
    return jnp.where(mask, x / keep, jnp.zeros((), x.dtype))


def pixel_shuffle(x: jax.Array, r: int) -> jax.Array:
    """torch.nn.PixelShuffle in NHWC, (B, H, W, c·r²) -> (B, rH, rW, c):
    out[h·r+i, w·r+j, c] = in[h, w, c·r² + i·r + j]."""
    b, h, w, c = x.shape
    x = x.reshape(b, h, w, c // (r * r), r, r)
    x = x.transpose(0, 1, 4, 2, 5, 3)
    return x.reshape(b, h * r, w * r, c // (r * r))
