"""Benchmark evaluation by the SR protocol, the command (spec §12).

``python -m lsm_jax.evaluate (--checkpoint DIR | --bicubic) --data DIR [--data DIR ...] --scale S [--json FILE]``

The scoring itself is `lsm_jax.evaluation.scoring`; this module parses arguments and prints.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lsm_jax.evaluation.scoring import UpscaleFn, bicubic_upscaler, evaluate_folder, format_results

__all__ = ["main"]


def _checkpoint_upscaler(path: str, scale: int) -> UpscaleFn:
    try:
        from lsm_jax.inference.forward import Upscaler  # written separately; imported only when needed
    except ImportError as e:
        raise SystemExit(f"evaluate: --checkpoint needs lsm_jax.inference ({e})") from None
    try:
        up = Upscaler.from_checkpoint(path)
    except Exception as e:  # any load failure becomes one line naming the folder
        raise SystemExit(f"evaluate: --checkpoint {path}: cannot load ({e})") from None
    if int(up.scale) != scale:
        raise SystemExit(f"evaluate: --checkpoint {path} is a x{up.scale} model but --scale is {scale}")
    return up


def main(argv: list[str] | None = None) -> list[dict]:
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
    args = ap.parse_args(argv)
    if args.scale < 1:
        raise SystemExit(f"evaluate: --scale must be a positive integer, got {args.scale}")
    for d in args.data:
        if not Path(d).is_dir():
            raise SystemExit(f"evaluate: --data {d}: not a directory")
    if args.bicubic:
        upscale, method = bicubic_upscaler(args.scale), "Bicubic"
    else:
        upscale, method = _checkpoint_upscaler(args.checkpoint, args.scale), Path(args.checkpoint).name
    results = []
    try:
        for d in args.data:
            results.append(evaluate_folder(upscale, d, args.scale, progress=not args.no_progress))
    except ValueError as e:  # ImageFileError (bad files) or a model giving a wrong shape / NaN
        raise SystemExit(f"evaluate: {e}") from None
    print(format_results(results, method))
    if args.json:
        out = {"method": method, "checkpoint": args.checkpoint, "scale": args.scale,
               "protocol": "Y (BT.601), crop_border=scale, uint8-rounded SR, Gaussian SSIM 11/1.5",
               "datasets": results}
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=2, allow_nan=True))
        print(f"\nwrote {args.json}")
    return results


if __name__ == "__main__":
    main()
