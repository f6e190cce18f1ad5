"""Cut HR images (and their LR copies) into sub-images stored in ArrayRecord shards:
``lsm-make-dataset -i HR_DIR [--lr DIR | --scales 2,3,4] -o DIR [--crop 480 --step 240]``
(or ``python -m lsm_jax.make_dataset``).

How sub-images are cut and stored, and what a rerun keeps: `lsm_jax.data.record_writer`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from lsm_jax.data.image_io import ImageFileError
from lsm_jax.data.record_format import CODECS
from lsm_jax.data.record_writer import make_dataset, source_bytes
from lsm_jax.runtime.command_line import new_spellings

# Spellings before the one vocabulary of the commands: still read, not shown in the help.
RENAMED = {"--hr": "--input", "--out": "--output", "--no-progress": "--quiet"}
PROG = "lsm-make-dataset"



def main(argv: Sequence[str] | None = None) -> None:
    """CLI entry point."""
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    ap.add_argument("-i", "--input", required=True, metavar="DIR", help="folder of HR images")
    ap.add_argument("-o", "--output", required=True, metavar="DIR", help="output records folder")
    ap.add_argument("--lr", help="folder of pre-made LR images; '{scale}' is replaced, e.g. DIV2K_LR/X{scale} "
                    "(default: MATLAB bicubic of each whole HR image)")
    ap.add_argument("--lr-tmpl", default="{}x{scale}", help="LR stem from the HR stem (default '{}x{scale}')")
    ap.add_argument("--scales", default="2,3,4", help="comma-separated LR scales to store (default 2,3,4)")
    ap.add_argument("--crop", type=int, default=480, help="sub-image side in HR pixels (default 480)")
    ap.add_argument("--step", type=int, default=240, help="distance between sub-images (default 240); training "
                    "gt_size may be at most crop - step")
    ap.add_argument("--shards", type=int, default=None, help="number of shards (default: ~50 images each)")
    ap.add_argument("--jobs", type=int, default=None, help="parallel processes (default: all cores)")
    ap.add_argument("--codec", default="up-zstd", choices=sorted(CODECS), help="tile storage (default up-zstd)")
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary (errors only)")
    args = ap.parse_args(new_spellings(sys.argv[1:] if argv is None else argv, RENAMED))
    try:
        scales = [int(s) for s in args.scales.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"{PROG}: error: --scales {args.scales!r}: expected integers like 2,3,4") from None
    try:
        index = make_dataset(args.input, args.output, scales=scales, lr_dir=args.lr, lr_tmpl=args.lr_tmpl,
                             crop=args.crop, step=args.step, shards=args.shards, jobs=args.jobs,
                             codec=args.codec, progress=not args.quiet)
    except (ImageFileError, ValueError) as e:
        raise SystemExit(f"{PROG}: error: {e}") from None
    size = sum(s["bytes"] for s in index["shards"])
    src = source_bytes(args.input, args.lr, index["scales"])
    if not args.quiet:
        print(f"wrote {index['num_subimages']} sub-images of {index['num_images']} images in "
              f"{len(index['shards'])} shards to {args.output}: {size / 2**20:.1f} MiB "
              f"({size / src:.2f}x the source files); training gt_size up to {args.crop - args.step}")
    if index["bad"]:
        for m in index["bad"]:
            print(f"  bad file: {m}", file=sys.stderr)
        raise SystemExit(f"{PROG}: error: {len(index['bad'])} file(s) skipped (listed above)")


if __name__ == "__main__":
    main()
