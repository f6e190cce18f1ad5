"""Make MATLAB-bicubic LR images: ``python -m lsm_jax.make_lr --hr DIR --scale S --out DIR``.

Writes ``{stem}x{S}.png`` for every image in ``--hr`` (BasicSR/SwinIR/DIV2K
layout). As in the scripts that made the benchmark sets, each HR is first
cropped to a multiple of S (``modcrop``) and then downscaled by 1/S with
:func:`lsm_jax.data.imresize.imresize` on uint8, so the LR is exactly HR/S.
Bad files are reported and skipped; the exit status is non-zero if any.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


from lsm_jax.data.image_io import ImageFileError
from lsm_jax.data.lr_images import make_lr_folder

def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    ap = argparse.ArgumentParser(
        prog="python -m lsm_jax.make_lr",
        description="Downscale every HR image with MATLAB-compatible bicubic; writes {stem}x{S}.png.",
    )
    ap.add_argument("--hr", required=True, help="folder of HR images")
    ap.add_argument("--scale", required=True, type=int, help="integer downscaling factor S (>= 2)")
    ap.add_argument("--out", required=True, help="output folder, e.g. DIV2K_train_LR_bicubic/X2")
    ap.add_argument("--skip-existing", action="store_true", help="keep LR files that already exist")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    if args.scale < 2:
        raise SystemExit(f"make_lr: --scale must be an integer >= 2, got {args.scale}")
    if not Path(args.hr).is_dir():
        raise SystemExit(f"make_lr: --hr {args.hr}: not a directory")
    try:
        n, errors = make_lr_folder(
            args.hr, args.scale, args.out, overwrite=not args.skip_existing, progress=not args.no_progress
        )
    except ImageFileError as e:
        raise SystemExit(f"make_lr: {e}") from None
    print(f"wrote {n} LR images to {args.out}")
    if errors:
        for m in errors:
            print(f"  bad file: {m}", file=sys.stderr)
        raise SystemExit(f"make_lr: {len(errors)} file(s) failed (listed above)")


if __name__ == "__main__":
    main()
