"""Deterministic whole-image inference: the path `upscale` and `evaluate` use.

The model is split once into a graph definition and its parameters; a pure function of
(parameters, image) is jitted and compiled once per input shape. Categorisation is a plain argmax,
so the same input gives the same bits on the same machine.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lsm_jax.model.saved import load_model
from lsm_jax.model.extent import Extent
from lsm_jax.model.network import LSM


def make_forward(model: LSM):
    """A jitted pure forward `fn(params, x, extent=None) -> y` and the model's parameters, for x
    (B, H, W, in_chans). With an `Extent`, x is a zero-padded image (see `Upscaler.in_shape`)."""
    graphdef, params = nnx.split(model)

    @jax.jit
    def forward(params, x, extent=None):
        return nnx.merge(graphdef, params)(x, extent=extent)

    return forward, params


class Upscaler:
    """Callable super-resolution of one image: (H, W, C) float32 in [0, 1] -> (sH, sW, C), unclamped.

    C is the model's `channels`: 3 (RGB), or 1 for a gray model.
    """

    def __init__(self, model: LSM, cfg=None):
        self.model = model
        self.cfg = cfg
        self.scale = int(model.scale)
        self.channels = int(model.in_chans)
        self._forward, self._params = make_forward(model)
        self.device = jax.devices()[0]

    @classmethod
    def from_checkpoint(cls, directory: str | os.PathLike, **overrides) -> 'Upscaler':
        """Load an inference checkpoint directory (see `lsm_jax.model.saved`); `overrides` replace
        config fields, e.g. `dtype='bfloat16'`."""
        model, cfg = load_model(directory, **overrides)
        return cls(model, cfg)

    @property
    def batch_independent(self) -> bool:
        """Whether images in a batch are processed independently (not under `reference` semantics,
        whose recurrence runs over the batch axis)."""
        sem = getattr(self.model, 'semantics', None)
        return (sem is not None and getattr(sem, 'scan_axis', 'batch') != 'batch'
                and not getattr(sem, 'mk_a_batch_mean', True))

    def _check(self, lr: np.ndarray) -> np.ndarray:
        lr = np.asarray(lr, np.float32)
        if lr.ndim != 3 or lr.shape[-1] != self.channels:
            kind = "RGB" if self.channels == 3 else "gray"
            raise ValueError(f"expected an (H, W, {self.channels}) {kind} image, got shape {lr.shape}")
        return lr

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        lr = self._check(lr)
        y = self._forward(self._params, jnp.asarray(lr)[None])
        return np.asarray(y[0])

    def in_shape(self, lr: np.ndarray, shape_hw: tuple[int, int]) -> np.ndarray:
        """`self(lr)` computed inside a zero-padded `shape_hw` map: the same pixels, from a program
        compiled once per `shape_hw` rather than once per image size (`lsm_jax.model.extent`)."""
        lr = self._check(lr)
        h, w = lr.shape[:2]
        if tuple(shape_hw) == (h, w):
            return self(lr)
        if shape_hw[0] < h or shape_hw[1] < w:
            raise ValueError(f"a {h}x{w} image does not fit in a {shape_hw[0]}x{shape_hw[1]} shape")
        padded = np.zeros((1, *shape_hw, self.channels), np.float32)
        padded[0, :h, :w] = lr
        y = self._forward(self._params, jnp.asarray(padded), Extent(np.int32(h), np.int32(w)))
        return np.asarray(y[0, :h * self.scale, :w * self.scale])

    def batch(self, lr: np.ndarray) -> np.ndarray:
        """(B, H, W, C) -> (B, sH, sW, C). Under `reference` semantics images in a batch interact (Q1)."""
        return np.asarray(self._forward(self._params, jnp.asarray(lr, jnp.float32)))
