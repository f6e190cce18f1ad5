"""Validation during training: the EMA weights on benchmark folders, by the evaluation protocol.

Whole-image inference at batch 1 with deterministic categorisation (as `lsm_jax.inference`), scored
by `lsm_jax.evaluation.scoring.evaluate_folder` (Y-channel PSNR/SSIM, crop border = scale). A few
centre crops (bicubic | model | HR) of the `eval.best_dir` folder, the one that selects the best
checkpoint, go to TensorBoard. The jitted forward compiles once per image size.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import ml_collections
import numpy as np
from flax import nnx

from lsm_jax.data.image_io import read_rgb8
from lsm_jax.evaluation.benchmarks import resolve_benchmark_dir
from lsm_jax.evaluation.scoring import bicubic_upscaler, evaluate_folder, find_pairs


def centre_crop(img: np.ndarray, size: int) -> np.ndarray:
    """The central size×size window (or the whole image if smaller)."""
    h, w = img.shape[:2]
    top, left = max((h - size) // 2, 0), max((w - size) // 2, 0)
    return img[top:top + size, left:left + size]


def crops(upscale_fn, data_dir: str | os.PathLike, scale: int, n: int, size: int) -> list[dict[str, Any]]:
    """Centre crops of the first `n` images of a benchmark folder (those with LR files):
    [{'name', 'bicubic', 'sr', 'hr'}] as float [0, 1] HWC arrays of side `size`."""
    _, pairs, _ = find_pairs(data_dir, scale)
    bicubic = bicubic_upscaler(scale)
    out = []
    for pair in [p for p in pairs if p.lr is not None][:n]:
        lr = read_rgb8(pair.lr).astype(np.float32) / 255.0
        h, w = lr.shape[:2]
        hr = read_rgb8(pair.hr)[: h * scale, : w * scale].astype(np.float32) / 255.0
        out.append(dict(name=pair.name, bicubic=centre_crop(np.clip(bicubic(lr), 0, 1), size),
                        sr=centre_crop(np.clip(upscale_fn(lr), 0, 1), size), hr=centre_crop(hr, size)))
    return out


class Validator:
    """Scores parameters on `config.eval.dirs` and logs scalars and a few crops."""

    def __init__(self, graphdef: nnx.GraphDef, rest: nnx.State, params_sharding: Any, replicated: Any,
                 config: ml_collections.ConfigDict):
        self.scale = int(config.model.upscale)
        self.dirs = [resolve_benchmark_dir(d) for d in config.eval.dirs] if config.eval.every > 0 else []
        self.num_images = int(config.eval.num_images)
        self.crop = int(config.eval.crop)
        self.best_dir = int(config.eval.best_dir)
        if self.dirs and not 0 <= self.best_dir < len(self.dirs):
            raise ValueError(f"eval.best_dir: {self.best_dir} is not an index into eval.dirs "
                             f"({len(self.dirs)} folder(s))")
        self._forward = jax.jit(lambda p, x: nnx.merge(graphdef, p, rest)(x, train=False),
                                in_shardings=(params_sharding, replicated), out_shardings=replicated)

    def upscaler(self, params: Any):
        """`lr (H, W, 3) float32 -> sr (sH, sW, 3)` with these parameters (batch 1, whole image)."""
        return lambda lr: np.asarray(self._forward(params, np.asarray(lr, np.float32)[None])[0])

    def run(self, step: int, params: Any, writer=None) -> dict[str, float]:
        """Scores on every folder: {'<dataset>/psnr', '<dataset>/ssim', ..., 'psnr', 'ssim'}, where
        the unprefixed pair is folder `eval.best_dir`'s (the one that selects the best checkpoint)."""
        out: dict[str, float] = {}
        up = self.upscaler(params)
        for i, data_dir in enumerate(self.dirs):
            res = evaluate_folder(up, data_dir, self.scale, progress=False)
            name = res["dataset"]
            out[f"{name}/psnr"], out[f"{name}/ssim"] = res["psnr"], res["ssim"]
            if i == self.best_dir:
                out["psnr"], out["ssim"] = res["psnr"], res["ssim"]
        if writer is not None and self.dirs:
            writer.scalars(step, {f"val/{k}": v for k, v in out.items() if "/" in k})
            # Previews from the folder that picks the best checkpoint, so they show what is selected on.
            if self.num_images > 0:  # every process: the forward is one program over all of them
                strips = {f"val/{c['name']}": np.concatenate([c["bicubic"], c["sr"], c["hr"]], axis=1)
                          for c in crops(up, self.dirs[self.best_dir], self.scale, self.num_images, self.crop)}
                writer.images(step, strips)
        return out
