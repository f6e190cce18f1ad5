"""Scoring a model on SR benchmark folders by the community's protocol (spec §12).

Each folder holds ``HR/`` and ``LR_bicubic/X{S}/`` with ``{name}x{S}.png`` (or Manga109's
``{name}_LRBI_x{S}.png``). A folder without ``LR_bicubic/X{S}`` (or a plain folder of images) gets
its LR made on the fly with MATLAB-compatible bicubic. Each LR must be exactly HR // S; the HR is
cropped to LR·S before scoring (the protocol's modcrop). The command is `lsm_jax.evaluate`;
training validation uses the same functions.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from tqdm import tqdm

from lsm_jax.data.image_io import ImageFileError, image_size, list_images, read_rgb8
from lsm_jax.data.imresize import imresize, modcrop
from lsm_jax.data.quantize import quantize
from lsm_jax.evaluation.metrics import sr_scores

__all__ = ["ImagePair", "find_pairs", "evaluate_folder", "bicubic_upscaler", "format_results"]

UpscaleFn = Callable[[np.ndarray], np.ndarray]

# Column order of the papers' tables; other folders follow in the order given.
_PAPER_ORDER = ("set5", "set14", ("b100", "bsd100", "bsds100"), "urban100", "manga109")


@dataclass(frozen=True)
class ImagePair:
    """One test image: its HR file and its LR file (``None``: made on the fly)."""

    name: str
    hr: Path
    lr: Path | None


def _lr_candidates(stem: str, scale: int) -> tuple[str, ...]:
    return (f"{stem}x{scale}", f"{stem}_LRBI_x{scale}", stem)


def find_pairs(data_dir: str | Path, scale: int) -> tuple[str, list[ImagePair], bool]:
    """Locate and check the HR/LR pairs of a benchmark folder (headers only, no decoding).

    Returns (dataset name, pairs, LR made on the fly?). Raises ImageFileError
    naming every missing or mismatched file.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise ImageFileError(root, "not a directory")
    hr_dir = root / "HR" if (root / "HR").is_dir() else root
    hr_files = list_images(hr_dir)
    if not hr_files:
        raise ImageFileError(hr_dir, f"no HR images (expected {root}/HR/*.png or images in {root})")
    lr_dir = root / "LR_bicubic" / f"X{scale}"
    on_the_fly = not lr_dir.is_dir()
    if on_the_fly:
        if (root / "LR_bicubic").is_dir():
            have = sorted(p.name for p in (root / "LR_bicubic").iterdir() if p.is_dir())
            raise ImageFileError(root / 'LR_bicubic', f"no X{scale} folder (found: {', '.join(have) or 'none'})")
        return root.name, [ImagePair(p.stem, p, None) for p in hr_files], True

    lr_by_stem = {p.stem: p for p in list_images(lr_dir)}
    pairs, problems = [], []
    for hp in hr_files:
        lp = next((lr_by_stem[c] for c in _lr_candidates(hp.stem, scale) if c in lr_by_stem), None)
        if lp is None:
            problems.append(f"{hp}: no LR in {lr_dir} (looked for {' / '.join(_lr_candidates(hp.stem, scale))}.*)")
            continue
        try:
            (H, W), (h, w) = image_size(hp), image_size(lp)
        except ImageFileError as e:
            problems.append(str(e))
            continue
        if (H // scale, W // scale) != (h, w):
            problems.append(
                f"{lp}: LR {h}x{w} does not match HR {hp.name} {H}x{W} at x{scale} (needs {H // scale}x{W // scale})"
            )
            continue
        pairs.append(ImagePair(hp.stem, hp, lp))
    if problems:
        raise ImageFileError(root, f"{len(problems)} bad pair(s):\n  " + "\n  ".join(problems))
    return root.name, pairs, False


def load_pair(pair: ImagePair, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """(LR uint8 (h, w, 3), HR uint8 cropped to (h·s, w·s, 3))."""
    hr = read_rgb8(pair.hr)
    if pair.lr is None:
        hr = modcrop(hr, scale)
        if hr.shape[0] < 1 or hr.shape[1] < 1:
            raise ImageFileError(pair.hr, f"smaller than the scale {scale}")
        lr = np.asarray(imresize(hr, 1.0 / scale))
    else:
        lr = read_rgb8(pair.lr)
        h, w = lr.shape[:2]
        if (hr.shape[0] // scale, hr.shape[1] // scale) != (h, w):
            raise ImageFileError(pair.lr, f"LR {h}x{w} does not match HR {pair.hr} {hr.shape[:2]} at x{scale}")
        hr = hr[: h * scale, : w * scale]
    return lr, hr


def evaluate_folder(upscale_fn: UpscaleFn, data_dir: str | Path, scale: int, progress: bool = True) -> dict:
    """Score ``upscale_fn`` on one benchmark folder.

    Args:
      upscale_fn: LR float32 (h, w, 3) in [0, 1] -> SR float (h·s, w·s, 3), unclamped.
      data_dir: benchmark folder (see the module docstring).
      scale: the SR factor (also the crop border).
      progress: show a progress bar on stderr.

    Returns:
      ``{'dataset', 'scale', 'lr_on_the_fly', 'psnr', 'ssim', 'images': [{'name', 'psnr', 'ssim'}, ...]}``
      with the means over images (PSNR in dB, Y channel).
    """
    name, pairs, on_the_fly = find_pairs(data_dir, scale)
    images = []
    for pair in tqdm(pairs, desc=f"{name} x{scale}", unit="img", disable=not progress, file=sys.stderr):
        lr, hr = load_pair(pair, scale)
        sr = np.asarray(upscale_fn(lr.astype(np.float32) / np.float32(255.0)))
        if sr.shape != hr.shape:
            raise ValueError(
                f"{pair.name}: the model returned {sr.shape} for LR {lr.shape}, expected {hr.shape} (x{scale})"
            )
        if not np.all(np.isfinite(sr)):  # a broken model, not a bad score: say which image
            raise ValueError(f"{pair.name}: the model returned NaN or inf for LR {lr.shape}")
        p, s = sr_scores(sr, hr, scale)
        images.append({"name": pair.name, "psnr": p, "ssim": s})
    return {
        "dataset": name,
        "scale": scale,
        "lr_on_the_fly": on_the_fly,
        "psnr": float(np.mean([r["psnr"] for r in images])),
        "ssim": float(np.mean([r["ssim"] for r in images])),
        "images": images,
    }


def bicubic_upscaler(scale: int) -> UpscaleFn:
    """Plain MATLAB-bicubic upsampling (uint8 path, as the published bicubic rows)."""

    def up(lr: np.ndarray) -> np.ndarray:
        lr8 = quantize(lr, 8)
        return np.asarray(imresize(lr8, float(scale))).astype(np.float32) / np.float32(255.0)

    return up


def _paper_rank(name: str) -> int:
    low = name.lower()
    for i, key in enumerate(_PAPER_ORDER):
        if low == key or (isinstance(key, tuple) and low in key):
            return i
    return len(_PAPER_ORDER)


def _fmt(v: float, digits: int) -> str:
    return "inf" if math.isinf(v) else f"{v:.{digits}f}"


def format_results(results: list[dict], method: str) -> str:
    """Per-image tables, then one summary row in the papers' layout (Set5 | Set14 | B100 | ...)."""
    lines = []
    for r in results:
        w = max([len("image")] + [len(i["name"]) for i in r["images"]])
        lines.append(f"\n{r['dataset']} x{r['scale']}" + ("  (LR made on the fly)" if r["lr_on_the_fly"] else ""))
        lines.append(f"| {'image':<{w}} | PSNR (dB) | SSIM   |")
        lines.append(f"|{'-' * (w + 2)}|-----------|--------|")
        for i in r["images"]:
            lines.append(f"| {i['name']:<{w}} | {_fmt(i['psnr'], 2):>9} | {_fmt(i['ssim'], 4)} |")
        lines.append(f"| {'mean':<{w}} | {_fmt(r['psnr'], 2):>9} | {_fmt(r['ssim'], 4)} |")
    ordered = sorted(results, key=lambda r: _paper_rank(r["dataset"]))  # stable: unknown sets keep their order
    head = ["Method", "Scale"] + [r["dataset"] for r in ordered]
    row = [method, f"x{results[0]['scale']}"] + [f"{_fmt(r['psnr'], 2)}/{_fmt(r['ssim'], 4)}" for r in ordered]
    widths = [max(len(a), len(b)) for a, b in zip(head, row)]
    lines.append("\nSummary (PSNR/SSIM on Y, crop_border = scale)")
    lines.append("| " + " | ".join(h.ljust(n) for h, n in zip(head, widths)) + " |")
    lines.append("|" + "|".join("-" * (n + 2) for n in widths) + "|")
    lines.append("| " + " | ".join(c.ljust(n) for c, n in zip(row, widths)) + " |")
    return "\n".join(lines)
