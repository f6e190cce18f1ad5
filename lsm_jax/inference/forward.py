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

from lsm_jax.inference.model_io import load_model
from lsm_jax.model.network import LSM


def make_forward(model: LSM):
    """A jitted pure forward `fn(params, x) -> y` and the model's parameters, for x (B, H, W, in_chans)."""
    graphdef, params = nnx.split(model)

    @jax.jit
    def forward(params, x):
        return nnx.merge(graphdef, params)(x)

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
        """Load an inference checkpoint directory (see `lsm_jax.model_io`); `overrides` replace
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

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        lr = np.asarray(lr, np.float32)
        if lr.ndim != 3 or lr.shape[-1] != self.channels:
            kind = "RGB" if self.channels == 3 else "gray"
            raise ValueError(f"expected an (H, W, {self.channels}) {kind} image, got shape {lr.shape}")
        y = self._forward(self._params, jnp.asarray(lr)[None])
        return np.asarray(y[0])

    def batch(self, lr: np.ndarray) -> np.ndarray:
        """(B, H, W, C) -> (B, sH, sW, C). Under `reference` semantics images in a batch interact (Q1)."""
        return np.asarray(self._forward(self._params, jnp.asarray(lr, jnp.float32)))
