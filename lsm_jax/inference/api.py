"""The Python API, exported as `lsm_jax.load_model`: one model, any image kind.

    >>> from lsm_jax import load_model
    >>> model = load_model(checkpoint)               # a checkpoint folder, weights file, or "lsm_light_x4"
    >>> sr = model.upscale(photo)                    # uint8 (H, W, 3) in, uint8 (sH, sW, 3) out
    >>> sr.dtype, sr.shape == (model.scale * photo.shape[0], model.scale * photo.shape[1], 3)
    (dtype('uint8'), True)

The function is a method (`model.upscale(image)`, also `model(image)`) rather than `lsm_jax.upscale`, because
`lsm_jax.upscale` is the command's module (`python -m lsm_jax.upscale`). `upscale` returns the kind it is given: a uint8 array gives uint8, uint16 gives uint16, a float array (taken
as [0, 1]) gives floats of its dtype clipped to [0, 1], and a PIL image gives a PIL image of the matching mode.
(H, W) gray arrays stay (H, W); gray and gray+alpha come back gray, alpha is resized with bicubic, exactly as
`lsm-upscale` does for files. An integer array of another dtype (int64 from a list, say) is an error, never
read as [0, 1]. The pixels equal the command's with the same options (`tile`, `ensemble`, `dtype`,
`max_memory`): both run `lsm_jax.inference.strategy` and round by `lsm_jax.data.quantize`.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
from PIL import Image

from lsm_jax.data.image_io import image_from_array, image_from_pillow
from lsm_jax.inference.forward import Upscaler
from lsm_jax.inference.image_files import upscale_image
from lsm_jax.inference.strategy import InferenceOptions, build_upscale_fn
from lsm_jax.porting.model_source import resolve

__all__ = ["Model", "load_model"]

log = logging.getLogger(__name__)
_DTYPES = ("float32", "bfloat16")


def load_model(source: str | os.PathLike, *, dtype: str = "float32") -> "Model":
    """The model of `source`, ready to `upscale` with. `source` is what `lsm-upscale --model` takes: a released
    model's name (`"lsm_light_x4"`: the authors' weights, downloaded and converted once into the user cache),
    `"hf://OWNER/REPO/FILE"`, an `https://` URL of a weights file, a `.pth`/`.safetensors`/`.npz` weights
    file (converted once, cached by its sha256), or an lsm-jax checkpoint folder (what `lsm-train` exports
    and `lsm-convert` writes); see `lsm_jax.porting.model_source`. A source that cannot be used raises
    `lsm_jax.porting.model_source.ModelSourceError` (a ValueError) with one line saying what to do.
    `dtype='bfloat16'` computes matmuls and convolutions in bf16 (states, softmax and sums stay float32):
    faster on accelerators, not bit-exact."""
    if dtype not in _DTYPES:
        raise ValueError(f"dtype: expected one of {', '.join(_DTYPES)}, got {dtype!r}")
    text = os.fspath(source)
    if not os.path.exists(text) and ("/" in text or os.sep in text) and "://" not in text:
        raise FileNotFoundError(f"{text}: not an lsm-jax checkpoint folder or weights file (no such path)")
    resolved = resolve(source, report=log.info)
    network = Upscaler.from_checkpoint(resolved.path, **({} if dtype == "float32" else {"dtype": dtype}))
    return Model(network, os.fspath(source), dtype, folder=resolved.path)


class Model:
    """A loaded LSM network; `upscale(image)` super-resolves one image and returns it in its own kind."""

    def __init__(self, network: Upscaler, source: str, dtype: str = "float32",
                 folder: str | os.PathLike | None = None):
        self.network, self.source, self.dtype = network, source, dtype
        self.folder = os.fspath(folder if folder is not None else source)   # the checkpoint folder it was read from
        self.scale, self.channels = int(network.scale), int(network.channels)
        self._variants: dict[str, Model] = {dtype: self}

    def __repr__(self) -> str:
        cfg = self.network.cfg
        arch = getattr(cfg, "arch", "LSM") if cfg is not None else "LSM"
        return f"Model({arch} x{self.scale}, {self.source!r}, dtype={self.dtype})"

    def at_dtype(self, dtype: str) -> "Model":
        """The same checkpoint computing in `dtype` (loaded once, then kept)."""
        if dtype not in self._variants:
            self._variants[dtype] = load_model(self.folder, dtype=dtype)
        return self._variants[dtype]

    def upscale(self, image: Any, *, tile: int | None = None, ensemble: bool = False, dtype: str | None = None,
                max_memory: int | None = None, overlap: int = 16) -> Any:
        """Super-resolve `image` (uint8/uint16/float array or PIL image) and return the same kind. `tile`
        forces tiles of at most tile x tile LR pixels; `max_memory` (bytes) is the budget that decides tiles
        otherwise (default: from the device); `ensemble` averages the 8 flips and transposes (8x slower);
        `dtype` computes at another dtype than the model was loaded with."""
        if dtype is not None and dtype != self.dtype:
            return self.at_dtype(dtype).upscale(image, tile=tile, ensemble=ensemble, max_memory=max_memory,
                                                overlap=overlap)
        if tile is not None and tile < 1:
            raise ValueError(f"tile: must be positive, got {tile}")
        is_pil = isinstance(image, Image.Image)
        samples = None if is_pil else np.asarray(image)
        img = image_from_pillow(image) if is_pil else image_from_array(samples)
        as_float = (image.mode == "F") if is_pil else np.issubdtype(samples.dtype, np.floating)
        opts = InferenceOptions(tile=tile, max_memory=max_memory, overlap=overlap, ensemble=ensemble, buckets=True)
        fn = build_upscale_fn(self.network, opts, report=log.info)
        out = upscale_image(img, fn, self.scale, self.channels, as_float=as_float)
        if is_pil:
            return _to_pillow(out)
        if samples.ndim == 2:
            out = out[..., 0]
        return out.astype(samples.dtype) if as_float else out

    __call__ = upscale


def _to_pillow(pixels: np.ndarray) -> Image.Image:
    if pixels.shape[2] == 1:
        plane = pixels[..., 0]
        return Image.fromarray(plane, "I;16") if plane.dtype == np.uint16 else Image.fromarray(plane)
    return Image.fromarray(pixels, {2: "LA", 3: "RGB", 4: "RGBA"}[pixels.shape[2]])
