"""Benchmark evaluation by the SR protocol, the command (spec §12).

``python -m lsm_jax.evaluate (--checkpoint DIR | --bicubic) --data DIR [--data DIR ...] --scale S [--json FILE]
[--ensemble] [--dtype bfloat16] [--buckets] [--tile N | --max-memory SIZE] [--no-cache]``

The scoring itself is `lsm_jax.evaluation.scoring`; this module parses arguments and prints.
`--ensemble` scores the model twice, single pass and self-ensemble, and reports the ensemble as its own
method row (`NAME+`). Inference is whole-image at each image's own shape by default (`--buckets`: exact too, fewer compiles), tiles
only when an image does not fit the memory budget or `--tile` is given.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from lsm_jax.evaluation.scoring import UpscaleFn, bicubic_upscaler, evaluate_folder, format_results

__all__ = ["main", "summary_rows"]


def summary_rows(per_method: dict[str, list[dict]]) -> str:
    """One summary table with a row per method (PSNR/SSIM per dataset)."""
    names = [r["dataset"] for r in next(iter(per_method.values()))]
    scale = next(iter(per_method.values()))[0]["scale"]
    lines = ["| Method | Scale | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for method, res in per_method.items():
        cells = [f"{r['psnr']:.2f}/{r['ssim']:.4f}" for r in res]
        lines.append(f"| {method} | x{scale} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _checkpoint_upscalers(path: str, scale: int, args) -> list[tuple[str, UpscaleFn]]:
    """(method name, function) for the single pass and, with --ensemble, the self-ensemble."""
    try:
        from lsm_jax.inference.forward import Upscaler  # written separately; imported only when needed
        from lsm_jax.inference.budget import parse_size
        from lsm_jax.inference.strategy import InferenceOptions, build_upscale_fn
    except ImportError as e:
        raise SystemExit(f"evaluate: --checkpoint needs lsm_jax.inference ({e})") from None
    try:
        budget = parse_size(args.max_memory) if args.max_memory else None
    except ValueError as e:
        raise SystemExit(f"evaluate: --max-memory: {e}") from None
    if not args.no_cache:
        from lsm_jax.runtime import compile_cache
        compile_cache.configure()
    try:
        up = Upscaler.from_checkpoint(path, **({} if args.dtype == "float32" else {"dtype": args.dtype}))
    except Exception as e:  # any load failure becomes one line naming the folder
        raise SystemExit(f"evaluate: --checkpoint {path}: cannot load ({e})") from None
    if int(up.scale) != scale:
        raise SystemExit(f"evaluate: --checkpoint {path} is a x{up.scale} model but --scale is {scale}")
    name = Path(path).name + ("" if args.dtype == "float32" else f" ({args.dtype})")
    out = []
    for ens in (False, True) if args.ensemble else (False,):
        opts = InferenceOptions(tile=args.tile, max_memory=budget, ensemble=ens, buckets=args.buckets)
        out.append((name + ("+" if ens else ""), build_upscale_fn(up, opts)))
    return out


def run(argv: list[str] | None = None) -> list[dict]:
    """CLI entry point; returns the per-dataset results."""
    ap = argparse.ArgumentParser(
        prog="python -m lsm_jax.evaluate",
        description="PSNR/SSIM (Y channel, crop_border = scale) on SR benchmark folders.",
    )
    model = ap.add_mutually_exclusive_group(required=True)
    model.add_argument("--checkpoint", metavar="DIR", help="trained or converted checkpoint folder")
    model.add_argument("--bicubic", action="store_true", help="plain MATLAB-bicubic upsampling baseline")
    ap.add_argument("--data", metavar="DIR", action="append", required=True,
                    help="benchmark folder with HR/ and LR_bicubic/X{S}/ (repeatable)")
    ap.add_argument("--scale", type=int, required=True, help="SR factor S")
    ap.add_argument("--json", metavar="FILE", help="write the results as JSON")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
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
    args = ap.parse_args(argv)
    if args.scale < 1:
        raise SystemExit(f"evaluate: --scale must be a positive integer, got {args.scale}")
    for d in args.data:
        if not Path(d).is_dir():
            raise SystemExit(f"evaluate: --data {d}: not a directory")
    if args.tile is not None and args.tile < 1:
        raise SystemExit(f"evaluate: --tile must be positive, got {args.tile}")
    if args.bicubic:
        methods = [("Bicubic", bicubic_upscaler(args.scale))]
    else:
        methods = _checkpoint_upscalers(args.checkpoint, args.scale, args)
    per_method = {}
    try:
        for method, upscale in methods:
            per_method[method] = [evaluate_folder(upscale, d, args.scale, progress=not args.no_progress)
                                  for d in args.data]
    except ValueError as e:  # ImageFileError (bad files) or a model giving a wrong shape / NaN
        raise SystemExit(f"evaluate: {e}") from None
    method, results = methods[0][0], per_method[methods[0][0]]
    for name, res in per_method.items():
        print(format_results(res, name))
    if len(per_method) > 1:
        print("\n" + summary_rows(per_method))
    if args.json:
        out = {"method": method, "checkpoint": args.checkpoint, "scale": args.scale,
               "protocol": "Y (BT.601), crop_border=scale, uint8-rounded SR, Gaussian SSIM 11/1.5",
               "datasets": results,
               "inference": {"dtype": args.dtype, "buckets": args.buckets, "tile": args.tile,
                             "max_memory": args.max_memory}}
        if len(per_method) > 1:
            out["methods"] = {name: res for name, res in per_method.items()}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2, allow_nan=True))
        print(f"\nwrote {args.json}")
    return results


def main(argv: list[str] | None = None) -> int:
    """Entry point of `lsm-evaluate`; errors leave through SystemExit with their message."""
    run(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
