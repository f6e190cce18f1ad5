"""Upscale your own images: ``lsm-upscale -i PATH -o DIR --model lsm_light_x4`` (or ``python -m lsm_jax.upscale``).

    lsm-upscale -i PATH -o DIR (--model SOURCE | --checkpoint DIR_OR_FILE)
        [--suffix _x{scale}] [--ext png|jpg|webp] [--quality Q]
        [--max-memory 4GB | --tile N] [--ensemble] [--dtype bfloat16] [--no-buckets] [--no-cache] [-q]

The model: `--model` takes a released name (lsm, lsm_s, lsm_light with _x2, _x3, _x4: the authors' weights,
downloaded from the hub once, converted and cached), hf://OWNER/REPO/FILE, an https:// URL, a weights file
or a checkpoint folder (`lsm_jax.porting.model_source`); `--checkpoint` takes a local checkpoint folder or weights
file (.pth, .safetensors, .npz: converted on first use and cached by its sha256).

PATH is one image or a folder of PNG/JPEG/BMP/TIFF/WebP files; each result is written as
``{stem}{suffix}.{ext}`` in the output folder, by default ``{stem}_x{scale}.png``. Gray inputs come back
gray, alpha is kept (resized with bicubic), 16-bit inputs give 16-bit PNGs. JPEG and WebP hold 8 bits per
sample: 16-bit results are rounded to 8 bits (a note says so); JPEG holds no alpha, so an image with alpha
fails with `--ext jpg` (use png or webp). Files that cannot be read are reported one line each and
skipped; the exit code is then 1. Files are written under a temporary name and renamed: an interrupted run
leaves no partial file.

Stages go to stderr (the model, loading, compiling, tiles of large images) and a summary ends the run:
compile time against run time, megapixels per second. `-q` prints nothing but errors.

The work is done by `lsm_jax.inference.image_files` (any function from float images to float images) and
`lsm_jax.inference.strategy` (tiles, buckets, ensemble).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from tqdm import tqdm

from lsm_jax.data.image_io import IMAGE_EXTENSIONS, list_images, read_image, write_png
from lsm_jax.inference.image_files import UpscaleFn, problem, upscale_image
from lsm_jax.inference.tiling import plan_axis, tiled

PROG = "lsm-upscale"
EXTENSIONS = ("png", "jpg", "jpeg", "webp")
DEFAULT_SUFFIX = "_x{scale}"
JPEG_QUALITY = 95


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="Upscale images with an LSM model.",
        epilog="Released models: lsm_x2 lsm_x3 lsm_x4 lsm_s_x2 lsm_s_x3 lsm_s_x4 lsm_light_x2 lsm_light_x3 "
               "lsm_light_x4 (downloaded from the hub once, then cached).")
    p.add_argument("-i", "--input", required=True, type=Path, metavar="PATH", help="an image, or a folder of images")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="DIR", help="output folder (created if missing)")
    model = p.add_mutually_exclusive_group(required=True)
    model.add_argument("-m", "--model", metavar="SOURCE",
                       help="a released model (e.g. lsm_light_x4), hf://OWNER/REPO/FILE, an https:// URL, "
                            "a weights file or a checkpoint folder")
    model.add_argument("--checkpoint", type=Path, metavar="PATH",
                       help="a checkpoint folder, or a .pth/.safetensors/.npz weights file (converted once, cached)")
    p.add_argument("--suffix", default=DEFAULT_SUFFIX, metavar="TEXT",
                   help="added to each file's stem; {scale} becomes the scale (default %(default)s)")
    p.add_argument("--ext", default="png", choices=EXTENSIONS, type=str.lower,
                   help="output format (default png; jpg and webp hold 8 bits per sample, jpg no alpha)")
    p.add_argument("--quality", type=int, default=None, metavar="Q",
                   help=f"jpg/webp quality 1-100 (default: jpg {JPEG_QUALITY}, webp lossless)")
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
    p.add_argument("-q", "--quiet", action="store_true", help="print only errors (no stages, bars or summary)")
    return p


def _fail(msg: str) -> SystemExit:
    return SystemExit(f"{PROG}: error: {msg}")


class FileProblem(ValueError):
    """A file that cannot be written as asked; reported as its message alone."""


class Stages:
    """Stage lines on stderr (none with -q) and the clock of the summary: time spent compiling (read from
    JAX's compile events: tracing, lowering, compiling or loading from the compile cache) against the rest."""

    _COMPILE_EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
                       "/jax/core/compile/backend_compile_duration")

    def __init__(self, quiet: bool):
        self.quiet = quiet
        self.compile_s = 0.0
        self.programs = self.cache_hits = 0

    def line(self, text: str) -> None:
        if not self.quiet:
            tqdm.write(text, file=sys.stderr)

    def _on_duration(self, event: str, duration: float, **_) -> None:
        if event in self._COMPILE_EVENTS:
            self.compile_s += duration
            self.programs += event.endswith("backend_compile_duration")

    def _on_event(self, event: str, **_) -> None:
        if event == "/jax/compilation_cache/cache_hits":
            self.cache_hits += 1

    def __enter__(self) -> "Stages":
        import jax.monitoring
        jax.monitoring.register_event_duration_secs_listener(self._on_duration)
        jax.monitoring.register_event_listener(self._on_event)
        return self

    def __exit__(self, *exc) -> None:
        import jax.monitoring
        jax.monitoring.unregister_event_duration_listener(self._on_duration)
        jax.monitoring.unregister_event_listener(self._on_event)


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


def _resolve_model(args, report: Callable[[str], None] | None):
    """The checkpoint folder of --model / --checkpoint (`lsm_jax.porting.model_source.ResolvedModel`)."""
    from lsm_jax.porting.model_source import ModelSourceError, resolve
    from lsm_jax.porting.releases import release_name
    if args.checkpoint is not None and not args.checkpoint.exists():
        hint = ""
        if release_name(str(args.checkpoint)):
            hint = f" (a released model: pass --model {args.checkpoint})"
        raise _fail(f"checkpoint not found: {args.checkpoint}{hint}")
    try:
        return resolve(args.model if args.model is not None else args.checkpoint, report=report)
    except ModelSourceError as exc:
        raise _fail(str(exc)) from None


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


def output_name(path: Path, scale: int, suffix: str = DEFAULT_SUFFIX, ext: str = "png") -> str:
    """``{stem}{suffix}.{ext}`` with ``{scale}`` in `suffix` replaced."""
    return f"{path.stem}{suffix.format(scale=scale)}.{ext}"


def _check_suffix(suffix: str) -> None:
    try:
        text = suffix.format(scale=2)
    except (KeyError, IndexError, ValueError) as exc:
        raise _fail(f"--suffix {suffix!r}: the only field is {{scale}} ({type(exc).__name__}: {exc})") from None
    if "/" in text or os.sep in text or "\0" in text:
        raise _fail(f"--suffix {suffix!r}: a suffix cannot hold a path separator")


def write_image(path: Path, pixels: np.ndarray, ext: str, quality: int | None = None) -> str | None:
    """Write uint8/uint16 (H, W, C) pixels as `ext`, atomically; returns a note when the format changed them
    (16-bit samples rounded to 8 bits). Raises FileProblem when the format cannot hold the image."""
    if ext == "png":
        write_png(path, pixels)
        return None
    from PIL import Image
    channels = pixels.shape[2]
    if ext in ("jpg", "jpeg") and channels in (2, 4):
        raise FileProblem("the image has an alpha channel, which JPEG cannot hold: use --ext png or webp")
    note = None
    if pixels.dtype == np.uint16:
        pixels = np.rint(pixels / 257.0).astype(np.uint8)   # 65535 / 255 = 257: exact levels stay exact
        note = f"16-bit result written with 8 bits per sample ({ext} holds no more; --ext png keeps 16)"
    if ext == "webp" and channels in (1, 2):   # WebP stores colour: gray as R = G = B
        pixels = np.concatenate([np.repeat(pixels[..., :1], 3, axis=2), pixels[..., 1:]], axis=2)
        channels += 2
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode)
    if ext == "webp":
        options = {"lossless": True} if quality is None else {"quality": quality}
        fmt = "WEBP"
    else:
        options = {"quality": quality or JPEG_QUALITY, "subsampling": 0}
        fmt = "JPEG"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        image.save(tmp, fmt, **options)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return note


class _TileCounter:
    """Counts the per-tile calls of a `TiledRunner` into a `tiles i/n` bar for images cut into tiles."""

    def __init__(self, runner, stages: Stages):
        self.runner, self.stages, self.bar = runner, stages, None
        self.inner = runner.forward
        runner.forward = self

    def __call__(self, lr):
        out = self.inner(lr)
        if self.bar is not None:
            self.bar.update(1)
        return out

    def tiles_for(self, h: int, w: int) -> int:
        runner = self.runner
        tile = runner.tile_for(h, w) if hasattr(runner, "tile_for") else runner.opts.tile
        if tile is None or (h <= tile and w <= tile):
            return 1
        from lsm_jax.inference.buckets import bucket_side
        sizes = (lambda n: bucket_side(n, runner.align)) if runner.opts.buckets else None
        ov = runner.opts.overlap
        return (len(plan_axis(h, tile, ov, runner.align, sizes).starts)
                * len(plan_axis(w, tile, ov, runner.align, sizes).starts))

    def start(self, h: int, w: int) -> None:
        n = self.tiles_for(h, w)
        self.bar = tqdm(total=n, desc="  tiles", unit="tile", leave=False, file=sys.stderr,
                        disable=self.stages.quiet) if n > 1 else None

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _process(paths: list[Path], args, fn: UpscaleFn, scale: int, channels: int, stages: Stages,
             counter: _TileCounter | None) -> tuple[list[tuple[Path, str]], dict]:
    """Upscale every file; returns the failures and the totals of the summary."""
    failures: list[tuple[Path, str]] = []
    taken: dict[str, Path] = {}
    totals = {"model_s": 0.0, "in_px": 0, "out_px": 0, "done": 0}
    notes: set[str] = set()

    def timed(lr: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        if counter is not None:
            counter.start(*lr.shape[:2])
        try:
            return fn(lr)
        finally:
            if counter is not None:
                counter.stop()
            totals["model_s"] += time.perf_counter() - start

    for k, path in enumerate(paths, 1):
        name = output_name(path, scale, args.suffix, args.ext)
        first = taken.setdefault(name.casefold(), path)
        target = args.output / name
        try:
            if first is not path:
                raise FileProblem(f"output name {name} is already used by {first.name}; rename one")
            if target.exists() and target.resolve() == path.resolve():
                raise FileProblem(f"the output {target} would overwrite the input; use another --suffix or -o")
            img = read_image(path)
            h, w = img.rgb.shape[:2]
            stages.line(f"[{k}/{len(paths)}] {path.name} {w}x{h} -> {name}")
            compile_before, hits_before = stages.compile_s, stages.cache_hits
            pixels = upscale_image(img, timed, scale, channels)
            compiled = stages.compile_s - compile_before
            if compiled >= 0.05:
                stages.line(f"  compiled for this size in {compiled:.1f} s"
                            + (" (read from the compile cache)" if stages.cache_hits > hits_before
                               else " (first time)"))
            note = write_image(target, pixels, args.ext, args.quality)
            if note and note not in notes:
                notes.add(note)
                stages.line(f"note: {note}")
            totals["done"] += 1
            totals["in_px"] += h * w
            totals["out_px"] += h * w * scale * scale
        except Exception as exc:  # noqa: BLE001 - one bad file must not stop a whole folder
            failures.append((path, str(exc) if isinstance(exc, FileProblem) else problem(exc)))
            tqdm.write(f"{path}: {failures[-1][1]}", file=sys.stderr)
    return failures, totals


def _mp(pixels: int) -> str:
    return f"{pixels / 1e6:.3g}"


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns 0, or 1 if any file failed. Usage errors raise SystemExit."""
    args = _parser().parse_args(argv)
    if args.tile is not None and args.tile < 1:
        raise _fail(f"--tile must be positive, got {args.tile}")
    if args.tile_overlap < 0:
        raise _fail(f"--tile-overlap must be >= 0, got {args.tile_overlap}")
    if args.quality is not None and not 1 <= args.quality <= 100:
        raise _fail(f"--quality must be 1-100, got {args.quality}")
    _check_suffix(args.suffix)
    budget = None
    if args.max_memory is not None:
        from lsm_jax.inference.budget import parse_size
        try:
            budget = parse_size(args.max_memory)
        except ValueError as exc:
            raise _fail(f"--max-memory: {exc}") from None
    # Cheap checks first, so a typo does not cost a download or a model load.
    paths, ignored = _collect_inputs(args.input)
    if args.output.exists() and not args.output.is_dir():
        raise _fail(f"--output is not a directory: {args.output}")
    stages = Stages(args.quiet)
    resolved = _resolve_model(args, None if args.quiet else stages.line)
    try:
        args.output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _fail(f"cannot create output directory {args.output}: {exc.strerror or exc}") from None
    if ignored:
        stages.line(f"note: ignoring {ignored} non-image file(s) in {args.input}")

    if not args.no_cache:
        from lsm_jax.runtime import compile_cache
        compile_cache.configure()
    with stages:
        t0 = time.perf_counter()
        upscaler = _load_upscaler(resolved.path, args.dtype)
        load_s = time.perf_counter() - t0
        compile_at_load = stages.compile_s
        scale = int(upscaler.scale)
        cfg = getattr(upscaler, "cfg", None)
        arch = f"{getattr(cfg, 'arch', 'LSM')} x{scale}" if cfg is not None else f"x{scale}"
        stages.line(f"model {resolved.label} ({arch}): loaded in {load_s:.1f} s from {resolved.path}")
        fn: UpscaleFn = upscaler
        counter = None
        if cfg is not None:
            from lsm_jax.inference.strategy import InferenceOptions, build_upscale_fn
            opts = InferenceOptions(tile=args.tile, max_memory=budget, overlap=args.tile_overlap,
                                    ensemble=args.ensemble, buckets=not args.no_buckets)
            fn = build_upscale_fn(upscaler, opts, report=stages.line)
            counter = _TileCounter(fn, stages)
        elif args.tile is not None:   # a stand-in model without a config (tests): plain tiles
            fn = tiled(upscaler, scale, args.tile, args.tile_overlap)
        try:
            failures, totals = _process(paths, args, fn, scale, int(getattr(upscaler, "channels", 3)), stages,
                                        counter)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130  # the shell's code for SIGINT; finished files stay, no partial file is left
    if not args.quiet:
        # Run time: the model's calls less the compiling inside them (a first call compiles, then runs).
        run_s = max(totals["model_s"] - (stages.compile_s - compile_at_load), 0.0)
        rate = f", {totals['out_px'] / 1e6 / run_s:.3g} MP/s" if run_s >= 0.01 and totals["out_px"] else ""
        cached = f", {stages.cache_hits} from the compile cache" if stages.cache_hits else ""
        print(f"upscaled {totals['done']} of {len(paths)} image(s) x{scale} into {args.output}: "
              f"{_mp(totals['in_px'])} MP in, {_mp(totals['out_px'])} MP out; "
              f"compile {stages.compile_s:.1f} s ({stages.programs} program(s){cached}), "
              f"run {run_s:.1f} s{rate}, load {load_s:.1f} s")
    if failures:
        print(f"{len(failures)} file(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
