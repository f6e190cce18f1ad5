"""Make MATLAB-bicubic LR images: ``lsm-make-lr -i HR_DIR --scale S -o DIR`` (or ``python -m lsm_jax.make_lr``).

Writes ``{stem}x{S}.png`` for every image in ``-i`` (BasicSR/SwinIR/DIV2K
layout). As in the scripts that made the benchmark sets, each HR is first
cropped to a multiple of S (``modcrop``) and then downscaled by 1/S with
:func:`lsm_jax.data.imresize.imresize` on uint8, so the LR is exactly HR/S.
Bad files are reported and skipped; the exit status is non-zero if any.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from lsm_jax.data.image_io import ImageFileError
from lsm_jax.data.lr_images import make_lr_folder
from lsm_jax.runtime.command_line import new_spellings

# Spellings before the one vocabulary of the commands: still read, not shown in the help.
RENAMED = {"--hr": "--input", "--out": "--output", "--no-progress": "--quiet"}
PROG = "lsm-make-lr"



def main(argv: Sequence[str] | None = None) -> None:
    """CLI entry point."""
    ap = argparse.ArgumentParser(
        prog=PROG,
        description="Downscale every HR image with MATLAB-compatible bicubic; writes {stem}x{S}.png.",
    )
    ap.add_argument("-i", "--input", required=True, metavar="DIR", help="folder of HR images")
    ap.add_argument("-o", "--output", required=True, metavar="DIR",
                    help="output folder, e.g. DIV2K_train_LR_bicubic/X2")
    ap.add_argument("--scale", required=True, type=int, help="integer downscaling factor S (>= 2)")
    ap.add_argument("--skip-existing", action="store_true", help="keep LR files that already exist")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary (errors only)")
    args = ap.parse_args(new_spellings(sys.argv[1:] if argv is None else argv, RENAMED))
    if args.scale < 2:
        raise SystemExit(f"{PROG}: error: --scale must be an integer >= 2, got {args.scale}")
    if not Path(args.input).is_dir():
        raise SystemExit(f"{PROG}: error: -i {args.input}: not a directory")
    try:
        n, errors = make_lr_folder(
            args.input, args.scale, args.output, overwrite=not args.skip_existing, progress=not args.quiet
        )
    except ImageFileError as e:
        raise SystemExit(f"{PROG}: error: {e}") from None
    if not args.quiet:
        print(f"wrote {n} LR images to {args.output}")
    if errors:
        for m in errors:
            print(f"  bad file: {m}", file=sys.stderr)
        raise SystemExit(f"{PROG}: error: {len(errors)} file(s) failed (listed above)")


if __name__ == "__main__":
    main()
