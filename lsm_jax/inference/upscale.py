"""Upscale your own images with a trained checkpoint.

    python -m lsm_jax.upscale --checkpoint DIR --input PATH --output DIR
        [--max-memory 4GB | --tile N] [--ensemble] [--dtype bfloat16] [--no-buckets] [--no-cache]

PATH is one image or a folder of PNG/JPEG/BMP/TIFF/WebP files; each result is written as
``{stem}_x{scale}.png`` in the output folder. Gray inputs come back gray, alpha is kept (resized
with bicubic), 16-bit inputs give 16-bit PNGs. Files that cannot be read are reported one line
each and skipped; the exit code is then 1.

The work is done by ``upscale_file`` / ``upscale_paths``, which take any ``upscale_fn`` mapping
float32 (H, W, C) in [0, 1] to float32 (sH, sW, C), so they run without a model in tests. C is 3,
or 1 for a gray (``in_chans=1``) checkpoint, which upscales gray images and refuses colour ones.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from tqdm import tqdm

from lsm_jax.inference.tiling import tiled
from lsm_jax.data.image_io import (
    IMAGE_EXTENSIONS, ImageFileError, LoadedImage, list_images, read_image, write_png,
)
from lsm_jax.data.imresize import imresize
from lsm_jax.data.quantize import quantize

__all__ = [
    "UpscaleFn",
    "main",
    "output_name",
    "resize_alpha",
    "tiled",
    "upscale_file",
    "upscale_image",
    "upscale_paths",
]

UpscaleFn = Callable[[np.ndarray], np.ndarray]
PROG = "python -m lsm_jax.upscale"


def output_name(path: str | os.PathLike, scale: int) -> str:
    """File name of the result for ``path``: ``{stem}_x{scale}.png``."""
    return f"{Path(path).stem}_x{scale}.png"


def resize_alpha(alpha: np.ndarray, scale: int) -> np.ndarray:
    """Upscale an alpha plane (H, W) float in [0, 1] by ``scale`` with bicubic; float32 (sH, sW).

    Uses the MATLAB-style bicubic of ``lsm_jax.imresize`` (the same kernel the SR protocol makes
    its LR images with). Not clamped: callers clamp when quantising.
    """
    h, w = alpha.shape
    if alpha.min() == alpha.max():
        # Uniform alpha (typically an all-opaque RGBA file): exact, and skips a JAX compile.
        return np.full((h * scale, w * scale), alpha.flat[0], np.float32)
    out = np.asarray(imresize(np.asarray(alpha, np.float32), scale=scale), np.float32)
    if out.shape != (h * scale, w * scale):
        raise ValueError(f"alpha resize gave {out.shape}, expected {(h * scale, w * scale)}")
    return out


def upscale_image(img: LoadedImage, upscale_fn: UpscaleFn, scale: int, channels: int = 3) -> np.ndarray:
    """Run ``upscale_fn`` on ``img`` and return the pixels to write (uint8/uint16, (sH, sW, C)).

    C is 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA), following the source. A gray source is
    fed to the network as R = G = B, and the three output channels are averaged back to one. The
    ideal output of a gray input is itself gray, so any weights summing to one agree on it; they
    only differ in how they combine the network's small per-channel deviations, and equal weights
    give the least variance. BT.601 luma weights would trust green twice as much as red for no
    reason: the input green carried no more information. A 1-channel model (``channels=1``) sees
    the gray plane itself. Samples are rounded by ``lsm_jax.data.quantize`` (the metrics' rule), so an
    8-bit result is the image that is scored.
    """
    h, w = img.rgb.shape[:2]
    if channels == 1 and not img.was_gray:
        raise ValueError("a colour image, but the checkpoint is a 1-channel (gray) model")
    sr = np.asarray(upscale_fn(img.rgb if channels == 3 else img.rgb[..., :1]), dtype=np.float32)
    if sr.shape != (h * scale, w * scale, channels):
        raise ValueError(f"the model returned shape {sr.shape}, expected {(h * scale, w * scale, channels)}")
    color = sr.mean(axis=2, dtype=np.float64, keepdims=True) if img.was_gray else sr
    planes = [quantize(color, img.bit_depth)]
    if img.alpha is not None:
        planes.append(quantize(resize_alpha(img.alpha, scale)[..., None], img.bit_depth))
    return np.concatenate(planes, axis=2)


def upscale_file(
    path: str | os.PathLike, out_dir: str | os.PathLike, upscale_fn: UpscaleFn, scale: int,
    channels: int = 3,
) -> Path:
    """Upscale one image file into ``out_dir/{stem}_x{scale}.png``; returns the path written.

    Creates ``out_dir`` if needed. Raises ``ImageFileError`` if the file cannot be read, other
    exceptions for model or write errors.
    """
    img = read_image(path)
    out_path = Path(out_dir) / output_name(path, scale)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_png(out_path, upscale_image(img, upscale_fn, scale, channels))
    return out_path


def _problem(exc: Exception) -> str:
    if isinstance(exc, ImageFileError):
        return exc.reason
    msg = str(exc).strip()
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


def upscale_paths(
    paths: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    upscale_fn: UpscaleFn,
    scale: int,
    *,
    progress: bool = False,
    report: Callable[[str], None] | None = None,
    channels: int = 3,
) -> list[tuple[Path, str]]:
    """Upscale every file in ``paths`` into ``out_dir``; returns ``[(path, problem), ...]`` failures.

    A failing file does not stop the others. Each failure is also passed to ``report`` as one
    line ``"<path>: <problem>"`` as it happens (default: stderr, without breaking the tqdm bar).
    Two inputs that would write the same output name (``a.png`` and ``a.jpg``) are not allowed to
    overwrite each other: the later one fails. Names are compared case-insensitively, as they
    collide on macOS and Windows file systems.
    """
    paths = [Path(p) for p in paths]
    if report is None:

        def report(line: str) -> None:
            tqdm.write(line, file=sys.stderr)

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    failures: list[tuple[Path, str]] = []
    taken: dict[str, Path] = {}
    with tqdm(paths, desc="upscale", unit="img", disable=not progress, file=sys.stderr) as bar:
        for path in bar:
            name = output_name(path, scale)
            first = taken.setdefault(name.casefold(), path)
            try:
                if first is not path:
                    raise ValueError(f"output name {name} is already used by {first.name}; rename one")
                upscale_file(path, out_dir, upscale_fn, scale, channels)
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop a whole folder
                failures.append((path, _problem(exc)))
                report(f"{path}: {failures[-1][1]}")
    return failures


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Upscale images with an LSM checkpoint.")
    p.add_argument("--checkpoint", required=True, type=Path, help="checkpoint directory")
    p.add_argument("--input", required=True, type=Path, help="an image, or a folder of images")
    p.add_argument("--output", required=True, type=Path, help="output folder (created if missing)")
    p.add_argument(
        "--max-memory", default=None, metavar="SIZE",
        help="memory budget, e.g. 4GB: images that do not fit are cut into blended tiles sized to it "
             "(default: half the free RAM, or 80%% of the accelerator's memory)",
    )
    p.add_argument(
        "--tile", type=int, default=None, metavar="N",
        help="force tiles of at most N x N LR pixels (default: chosen from --max-memory)",
    )
    p.add_argument(
        "--tile-overlap", type=int, default=16, metavar="N", help="LR overlap between tiles (16)"
    )
    p.add_argument("--ensemble", action="store_true",
                   help="self-ensemble: average the 8 flips/transposes (8x slower, LSM+)")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                   help="compute dtype of matmuls/convolutions (states, softmax, sums stay float32)")
    p.add_argument("--no-buckets", action="store_true",
                   help="compile one program per image size (default: run each image zero-padded in one of a "
                        "few bucket shapes, told where the image lies: the same pixels, fewer compiles)")
    p.add_argument("--no-cache", action="store_true",
                   help="do not use the persistent compilation cache ($LSM_JAX_CACHE_DIR or ~/.cache/lsm-jax/jax)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    return p


def _fail(msg: str) -> SystemExit:
    return SystemExit(f"{PROG}: error: {msg}")


def _collect_inputs(path: Path) -> tuple[list[Path], int]:
    """(image files to process, number of other files ignored)."""
    if path.is_dir():
        try:
            images = list_images(path)
            visible = sum(1 for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        except OSError as exc:
            raise _fail(f"cannot list {path}: {exc.strerror or exc}") from None
        ignored = visible - len(images)
        if not images:
            raise _fail(f"no image files ({' '.join(IMAGE_EXTENSIONS)}) in {path}")
        return images, ignored
    if path.exists():
        return [path], 0  # a single file named explicitly is tried whatever its extension
    raise _fail(f"input not found: {path}")


def _load_upscaler(checkpoint: Path, dtype: str = "float32"):
    """The real model: ``lsm_jax.inference.Upscaler`` (imported late: JAX start-up is slow)."""
    try:
        from lsm_jax.inference.forward import Upscaler
    except ImportError as exc:
        raise _fail(f"cannot import the model code (lsm_jax.inference): {exc}") from None
    try:
        return Upscaler.from_checkpoint(checkpoint, **({} if dtype == "float32" else {"dtype": dtype}))
    except Exception as exc:  # noqa: BLE001 - one line for the user, not a traceback
        raise _fail(f"cannot load checkpoint {checkpoint}: {_problem(exc)}") from None


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns 0, or 1 if any file failed. Usage errors raise SystemExit."""
    args = _parser().parse_args(argv)
    if args.tile is not None and args.tile < 1:
        raise _fail(f"--tile must be positive, got {args.tile}")
    if args.tile_overlap < 0:
        raise _fail(f"--tile-overlap must be >= 0, got {args.tile_overlap}")
    budget = None
    if args.max_memory is not None:
        from lsm_jax.inference.budget import parse_size
        try:
            budget = parse_size(args.max_memory)
        except ValueError as exc:
            raise _fail(f"--max-memory: {exc}") from None
    # Cheap checks first, so a typo does not cost a model load.
    paths, ignored = _collect_inputs(args.input)
    if not args.checkpoint.exists():
        raise _fail(f"checkpoint not found: {args.checkpoint}")
    if args.output.exists() and not args.output.is_dir():
        raise _fail(f"--output is not a directory: {args.output}")
    try:
        args.output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _fail(f"cannot create output directory {args.output}: {exc.strerror or exc}") from None
    if ignored and not args.quiet:
        print(f"note: ignoring {ignored} non-image file(s) in {args.input}", file=sys.stderr)

    if not args.no_cache:
        from lsm_jax import compile_cache
        compile_cache.configure()
    upscaler = _load_upscaler(args.checkpoint, args.dtype)
    scale = int(upscaler.scale)
    fn: UpscaleFn = upscaler
    if getattr(upscaler, "cfg", None) is not None:
        from lsm_jax.inference.runner import InferenceOptions, build_upscale_fn
        opts = InferenceOptions(tile=args.tile, max_memory=budget, overlap=args.tile_overlap,
                                ensemble=args.ensemble, buckets=not args.no_buckets)
        fn = build_upscale_fn(upscaler, opts, report=lambda line: tqdm.write(line, file=sys.stderr))
    elif args.tile is not None:   # a stand-in model without a config (tests): plain tiles
        fn = tiled(upscaler, scale, args.tile, args.tile_overlap)
    try:
        failures = upscale_paths(
            paths, args.output, fn, scale, progress=args.input.is_dir() and not args.quiet,
            channels=int(getattr(upscaler, "channels", 3)),
        )
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130  # the shell's code for SIGINT; finished files stay, no partial file is left
    if not args.quiet:
        done = len(paths) - len(failures)
        print(f"upscaled {done} of {len(paths)} image(s) x{scale} into {args.output}")
    if failures:
        print(f"{len(failures)} file(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
