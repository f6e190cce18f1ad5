"""Cut HR images (and their LR copies) into sub-images stored in ArrayRecord shards:
``python -m lsm_jax.make_dataset --hr DIR [--lr DIR | --scales 2,3,4] --out DIR [--crop 480 --step 240]``.

Sub-images lie as in BasicSR's ``extract_subimages`` (see :mod:`lsm_jax.data.subimages`); their pixels are
stored once, as tiles (:mod:`lsm_jax.data.record_format`), with the LR tiles of every scale. LR comes from
the user's files (``--lr``, checked to be exactly HR/S) or is made with MATLAB-exact bicubic of the *whole*
image, as ``make_lr`` and the benchmark sets do, and then cut: LR pixels near sub-image borders are those of
the whole-image LR, not of a resized crop.

Shards are written in parallel (one process per shard) to a temporary name and renamed when complete, with
their part of the index; a rerun keeps finished shards and redoes the rest. Bad files are reported in one line
each, skipped, and listed again at the end (exit status 1).
"""

from __future__ import annotations

import argparse
import sys


from lsm_jax.data.image_io import ImageFileError
from lsm_jax.data.record_format import (CODECS)
from lsm_jax.data.record_writer import source_bytes, make_dataset

def main(argv: list[str] | None = None) -> None:
    """CLI entry point."""
    ap = argparse.ArgumentParser(prog="python -m lsm_jax.make_dataset", description=__doc__.split("\n\n")[0])
    ap.add_argument("--hr", required=True, help="folder of HR images")
    ap.add_argument("--lr", help="folder of pre-made LR images; '{scale}' is replaced, e.g. DIV2K_LR/X{scale} "
                    "(default: MATLAB bicubic of each whole HR image)")
    ap.add_argument("--lr-tmpl", default="{}x{scale}", help="LR stem from the HR stem (default '{}x{scale}')")
    ap.add_argument("--scales", default="2,3,4", help="comma-separated LR scales to store (default 2,3,4)")
    ap.add_argument("--out", required=True, help="output records folder")
    ap.add_argument("--crop", type=int, default=480, help="sub-image side in HR pixels (default 480)")
    ap.add_argument("--step", type=int, default=240, help="distance between sub-images (default 240); training "
                    "gt_size may be at most crop - step")
    ap.add_argument("--shards", type=int, default=None, help="number of shards (default: ~50 images each)")
    ap.add_argument("--jobs", type=int, default=None, help="parallel processes (default: all cores)")
    ap.add_argument("--codec", default="up-zstd", choices=sorted(CODECS), help="tile storage (default up-zstd)")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    try:
        scales = [int(s) for s in args.scales.split(",") if s.strip()]
    except ValueError:
        raise SystemExit(f"make_dataset: --scales {args.scales!r}: expected integers like 2,3,4") from None
    try:
        index = make_dataset(args.hr, args.out, scales=scales, lr_dir=args.lr, lr_tmpl=args.lr_tmpl,
                             crop=args.crop, step=args.step, shards=args.shards, jobs=args.jobs,
                             codec=args.codec, progress=not args.no_progress)
    except (ImageFileError, ValueError) as e:
        raise SystemExit(f"make_dataset: {e}") from None
    size = sum(s["bytes"] for s in index["shards"])
    src = source_bytes(args.hr, args.lr, index["scales"])
    print(f"wrote {index['num_subimages']} sub-images of {index['num_images']} images in {len(index['shards'])} "
          f"shards to {args.out}: {size / 2**20:.1f} MiB ({size / src:.2f}x the source files); "
          f"training gt_size up to {args.crop - args.step}")
    if index["bad"]:
        for m in index["bad"]:
            print(f"  bad file: {m}", file=sys.stderr)
        raise SystemExit(f"make_dataset: {len(index['bad'])} file(s) skipped (listed above)")


if __name__ == "__main__":
    main()
