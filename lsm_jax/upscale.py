"""Upscale your own images with a trained checkpoint.

    python -m lsm_jax.upscale --checkpoint DIR --input PATH --output DIR
        [--max-memory 4GB | --tile N] [--ensemble] [--dtype bfloat16] [--no-buckets] [--no-cache]

PATH is one image or a folder of PNG/JPEG/BMP/TIFF/WebP files; each result is written as
``{stem}_x{scale}.png`` in the output folder. Gray inputs come back gray, alpha is kept (resized
with bicubic), 16-bit inputs give 16-bit PNGs. Files that cannot be read are reported one line
each and skipped; the exit code is then 1.

The work is done by `lsm_jax.inference.image_files` (any function from float images to float images) and
`lsm_jax.inference.strategy` (tiles, buckets, ensemble).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from lsm_jax.inference.tiling import tiled
from lsm_jax.data.image_io import IMAGE_EXTENSIONS, list_images
from lsm_jax.inference.image_files import UpscaleFn, problem, upscale_paths

PROG = "lsm-upscale"


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
        raise _fail(f"cannot load checkpoint {checkpoint}: {problem(exc)}") from None


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
        from lsm_jax.runtime import compile_cache
        compile_cache.configure()
    upscaler = _load_upscaler(args.checkpoint, args.dtype)
    scale = int(upscaler.scale)
    fn: UpscaleFn = upscaler
    if getattr(upscaler, "cfg", None) is not None:
        from lsm_jax.inference.strategy import InferenceOptions, build_upscale_fn
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
