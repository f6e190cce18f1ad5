"""Benchmark evaluation by the SR protocol, the command (spec §12).

``lsm-evaluate (--model SOURCE | --checkpoint PATH | --bicubic --scale S) -i DIR [-i DIR ...] [-o FILE.json]
[--save-images DIR] [--scale S] [--ensemble] [--dtype bfloat16] [--buckets] [--tile N | --max-memory SIZE]
[--no-cache] [-q]``

"The paper's model on Set5" is one command: ``lsm-evaluate --model lsm_light_x4 -i data/Set5`` (a released
name is downloaded, converted and cached once; see `lsm_jax.porting.model_source` for every kind of source). The
scale is read from the model unless `--scale` is given (then they must agree); `--bicubic` needs `--scale`.
`-o` writes the results as JSON, `--save-images DIR` the super-resolved images as 8-bit PNGs (the images
that are scored) in `DIR/<dataset>/<name>_x<S>.png` (`_x<S>_ensemble.png` for the self-ensemble).

The scoring itself is `lsm_jax.evaluation.scoring`; this module parses arguments and prints.
`--ensemble` scores the model twice, single pass and self-ensemble, and reports the ensemble as its own
method row (`NAME+`). Inference is whole-image at each image's own shape by default (`--buckets`: exact too,
fewer compiles), tiles only when an image does not fit the memory budget or `--tile` is given.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from lsm_jax.evaluation.benchmarks import resolve_benchmark_dir
from lsm_jax.evaluation.scoring import (
    UpscaleFn,
    bicubic_upscaler,
    evaluate_folder,
    find_pairs,
    format_results,
)
from lsm_jax.runtime.command_line import new_spellings

__all__ = ["main", "run", "summary_rows"]

PROG = "lsm-evaluate"
# Spellings before the one vocabulary of the commands: still read, not shown in the help.
RENAMED = {"--data": "--input", "--json": "--output", "--no-progress": "--quiet"}


def _fail(msg: str) -> SystemExit:
    return SystemExit(f"{PROG}: error: {msg}")


def summary_rows(per_method: dict[str, list[dict]]) -> str:
    """One summary table with a row per method (PSNR/SSIM per dataset)."""
    names = [r["dataset"] for r in next(iter(per_method.values()))]
    scale = next(iter(per_method.values()))[0]["scale"]
    lines = ["| Method | Scale | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for method, res in per_method.items():
        cells = [f"{r['psnr']:.2f}/{r['ssim']:.4f}" for r in res]
        lines.append(f"| {method} | x{scale} | " + " | ".join(cells) + " |")
    return "\n".join(lines)



def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=PROG, description="PSNR/SSIM (Y channel, crop_border = scale) on SR benchmark folders.",
        epilog="Released models: lsm_x2 lsm_x3 lsm_x4 lsm_s_x2 lsm_s_x3 lsm_s_x4 lsm_light_x2 lsm_light_x3 "
               "lsm_light_x4.")
    model = ap.add_mutually_exclusive_group(required=True)
    model.add_argument("-m", "--model", metavar="SOURCE",
                       help="a released model (e.g. lsm_light_x4), hf://OWNER/REPO/FILE, an https:// URL, "
                            "a weights file or a checkpoint folder")
    model.add_argument("--checkpoint", metavar="PATH",
                       help="a checkpoint folder, or a .pth/.safetensors/.npz weights file (converted once, cached)")
    model.add_argument("--bicubic", action="store_true", help="plain MATLAB-bicubic upsampling baseline")
    ap.add_argument("-i", "--input", metavar="DIR", action="append", required=True,
                    help="benchmark folder with HR/ and LR_bicubic/X{S}/ (repeatable)")
    ap.add_argument("-o", "--output", metavar="FILE", help="write the results as JSON to FILE")
    ap.add_argument("--save-images", metavar="DIR",
                    help="write the super-resolved images (8-bit PNG, as scored) to DIR/<dataset>/")
    ap.add_argument("--scale", type=int, default=None, metavar="S",
                    help="SR factor S (default: the model's; required with --bicubic)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bars or stage lines")
    ap.add_argument("--ensemble", action="store_true",
                    help="also score the 8-transform self-ensemble, as its own row (NAME+)")
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32",
                    help="compute dtype of matmuls/convolutions")
    ap.add_argument("--buckets", action="store_true",
                    help="run each image zero-padded in a bucket shape (fewer compiles, the same pixels)")
    ap.add_argument("--tile", type=int, default=None, metavar="N", help="force blended tiles of N x N LR pixels")
    ap.add_argument("--max-memory", default=None, metavar="SIZE",
                    help="memory budget; images that do not fit are tiled (default: from the device)")
    ap.add_argument("--no-cache", action="store_true", help="no persistent compilation cache")
    return ap


def _resolve(args):
    """The checkpoint folder of --model/--checkpoint (`lsm_jax.porting.model_source.ResolvedModel`)."""
    from lsm_jax.porting.model_source import ModelSourceError, resolve
    from lsm_jax.porting.releases import release_name
    source = args.model if args.model is not None else args.checkpoint
    if args.checkpoint is not None and not Path(args.checkpoint).exists():
        hint = (f" (a released model: pass --model {args.checkpoint})"
                if release_name(args.checkpoint) else "")
        raise _fail(f"--checkpoint {args.checkpoint}: checkpoint not found{hint}")
    report = None if args.quiet else (lambda line: print(line, file=sys.stderr))
    try:
        return resolve(source, report=report)
    except ModelSourceError as e:
        raise _fail(str(e)) from None


def _model_scale(resolved) -> int:
    from lsm_jax.model.saved import CheckpointError, read_config
    try:
        return int(read_config(resolved.path).upscale)
    except (CheckpointError, ValueError, OSError) as e:
        raise _fail(f"{resolved.source}: cannot read the checkpoint's config ({e})") from None


def _checkpoint_upscalers(resolved, args) -> list[tuple[str, UpscaleFn]]:
    """(method name, function) for the single pass and, with --ensemble, the self-ensemble."""
    try:
        from lsm_jax.inference.budget import parse_size
        from lsm_jax.inference.forward import (
            Upscaler,  # imported only when needed: JAX start-up is slow
        )
        from lsm_jax.inference.strategy import InferenceOptions, build_upscale_fn
    except ImportError as e:
        raise _fail(f"a model needs lsm_jax.inference ({e})") from None
    try:
        budget = parse_size(args.max_memory) if args.max_memory else None
    except ValueError as e:
        raise _fail(f"--max-memory: {e}") from None
    if not args.no_cache:
        from lsm_jax.runtime import compile_cache
        compile_cache.configure()
    try:
        up = Upscaler.from_checkpoint(resolved.path, **({} if args.dtype == "float32" else {"dtype": args.dtype}))
    except Exception as e:  # any load failure becomes one line naming the source
        raise _fail(f"{resolved.source}: cannot load ({e})") from None
    name = resolved.label + ("" if args.dtype == "float32" else f" ({args.dtype})")
    out = []
    for ens in (False, True) if args.ensemble else (False,):
        opts = InferenceOptions(tile=args.tile, max_memory=budget, ensemble=ens, buckets=args.buckets)
        out.append((name + ("+" if ens else ""), build_upscale_fn(up, opts)))
    return out


def _saving(upscale: UpscaleFn, data_dir: str, scale: int, folder: Path, ensemble: bool) -> UpscaleFn:
    """`upscale`, also writing each result as the 8-bit PNG that is scored (the pairs' order is the
    scorer's: `find_pairs`)."""
    from lsm_jax.data.image_io import write_png
    from lsm_jax.data.quantize import quantize
    dataset, pairs, _ = find_pairs(data_dir, scale)
    names = iter([p.name for p in pairs])
    tail = f"_x{scale}" + ("_ensemble" if ensemble else "")

    def fn(lr: np.ndarray) -> np.ndarray:
        sr = upscale(lr)
        name = next(names, None)
        arr = np.asarray(sr)
        if name is not None and arr.ndim == 3 and np.all(np.isfinite(arr)):   # else the scorer says what is wrong
            write_png(folder / dataset / f"{name}{tail}.png", quantize(arr, 8))
        return sr

    return fn


def run(argv: Sequence[str] | None = None) -> list[dict]:
    """CLI entry point; returns the per-dataset results."""
    args = _parser().parse_args(new_spellings(sys.argv[1:] if argv is None else argv, RENAMED))
    if args.scale is not None and args.scale < 1:
        raise _fail(f"--scale must be a positive integer, got {args.scale}")
    if args.bicubic and args.scale is None:
        raise _fail("--bicubic needs --scale S")
    try:   # data/Set5 also names the bundled copy, from any directory and an install
        args.input = [str(resolve_benchmark_dir(d, option="-i")) for d in args.input]
    except FileNotFoundError as err:
        raise _fail(str(err)) from None
    if args.tile is not None and args.tile < 1:
        raise _fail(f"--tile must be positive, got {args.tile}")
    resolved = None
    if args.bicubic:
        scale = args.scale
        methods = [("Bicubic", bicubic_upscaler(scale))]
    else:
        resolved = _resolve(args)
        scale = _model_scale(resolved)
        if args.scale is not None and args.scale != scale:
            raise _fail(f"{resolved.source} is a x{scale} model but --scale is {args.scale}")
        methods = _checkpoint_upscalers(resolved, args)
    per_method = {}
    try:
        for method, upscale in methods:
            results = []
            for d in args.input:
                fn = upscale if not args.save_images else _saving(upscale, d, scale, Path(args.save_images),
                                                                  method.endswith("+"))
                results.append(evaluate_folder(fn, d, scale, progress=not args.quiet))
            per_method[method] = results
    except ValueError as e:  # ImageFileError (bad files) or a model giving a wrong shape / NaN
        raise _fail(str(e)) from None
    method, results = methods[0][0], per_method[methods[0][0]]
    for name, res in per_method.items():
        print(format_results(res, name))
    if len(per_method) > 1:
        print("\n" + summary_rows(per_method))
    if args.save_images:
        print(f"\nwrote the super-resolved images to {args.save_images}")
    if args.output:
        out = {"method": method, "checkpoint": None if resolved is None else resolved.source, "scale": scale,
               "protocol": "Y (BT.601), crop_border=scale, uint8-rounded SR, Gaussian SSIM 11/1.5",
               "datasets": results,
               "inference": {"dtype": args.dtype, "buckets": args.buckets, "tile": args.tile,
                             "max_memory": args.max_memory}}
        if resolved is not None:
            out["model"] = {"source": resolved.source, "path": str(resolved.path), "weights_sha256": resolved.sha256}
        if len(per_method) > 1:
            out["methods"] = {name: res for name, res in per_method.items()}
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(out, indent=2, allow_nan=True))
        print(f"\nwrote {args.output}")
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of `lsm-evaluate`; errors leave through SystemExit with their message."""
    run(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
