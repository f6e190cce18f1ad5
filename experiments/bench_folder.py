"""Latency on a folder of 20 mixed-size images: compiles per folder with and without buckets, and the
persistent compilation cache (a second process reading the first one's cache).

    python -m experiments.bench_folder --checkpoint DIR [--images 20] [--csv experiments/results/bench_folder.csv]

(from the repository root, as every experiment runs: see experiments/__init__.py).

Images are crops of random sizes (40..160 LR pixels a side, fixed seed) of the repo's Set5 HR images.
Each mode runs in a fresh process: `exact` (one compile per new shape), `buckets`, and `buckets` again
with the cache the previous process filled (`buckets+warm cache`). Reported: first-image latency
(compile included), the median latency of the other images, total time and the number of compiles
(distinct input shapes the jitted forward saw), and each mode's total time over the `exact` mode's
of the same run (`total_over_exact`).

New rows are appended under `--bucketing LABEL` (the rows already in the CSV are kept), so a change
to how buckets work shows as a before/after pair: the first rows (reflect padding, inexact) came
before `lsm_jax.model.extent`, later ones run the exact zero-padded bucket.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from experiments.results_csv import append_rows


def images(n: int, seed: int = 0):
    import numpy as np
    from PIL import Image

    hr = sorted((Path(__file__).resolve().parents[1] / "data" / "Set5" / "HR").glob("*.png"))
    pics = [np.asarray(Image.open(p).convert("RGB"), np.float32) / 255 for p in hr]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        pic = pics[i % len(pics)]
        h, w = (int(rng.integers(40, min(161, s))) for s in pic.shape[:2])
        y, x = int(rng.integers(0, pic.shape[0] - h + 1)), int(rng.integers(0, pic.shape[1] - w + 1))
        out.append(np.ascontiguousarray(pic[y:y + h, x:x + w]))
    return out


def run_mode(checkpoint: str, n: int, buckets: bool, cache: str | None) -> dict:
    import jax

    if cache:
        from lsm_jax.runtime import compile_cache
        compile_cache.configure(cache)
    from lsm_jax.inference.forward import Upscaler
    from lsm_jax.inference.strategy import InferenceOptions, build_upscale_fn

    up = Upscaler.from_checkpoint(checkpoint)
    shapes = set()

    def counting(x):
        shapes.add(x.shape[:2])
        return up(x)

    def counting_in_shape(x, shape):
        shapes.add(tuple(shape))
        return up.in_shape(x, shape)

    fn = build_upscale_fn(_Wrap(up, counting, counting_in_shape),
                          InferenceOptions(max_memory=1 << 50, buckets=buckets))
    lat = []
    for img in images(n):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(img))
        lat.append(time.perf_counter() - t0)
    return dict(first_s=round(lat[0], 3), steady_median_s=round(statistics.median(lat[1:]), 3),
                total_s=round(sum(lat), 2), compiles=len(shapes), images=n, jax=jax.__version__)


class _Wrap:
    """An Upscaler look-alike whose call goes through `fn` (to count the shapes the model sees)."""

    def __init__(self, up, fn, in_shape):
        self._up, self._fn, self.in_shape = up, fn, in_shape
        self.cfg, self.scale, self.device, self.batch = up.cfg, up.scale, up.device, up.batch
        self.batch_independent = up.batch_independent

    def __call__(self, x):
        return self._fn(x)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--csv", default="experiments/results/bench_folder.csv")
    ap.add_argument("--bucketing", default="exact (zero padding + extent)",
                    help="label of this run's rows in the CSV's `bucketing` column")
    args = ap.parse_args(argv)
    if args.one:
        p = json.loads(args.one)
        print(json.dumps(run_mode(args.checkpoint, args.images, p["buckets"], p["cache"])), flush=True)
        return 0
    cache = tempfile.mkdtemp(prefix="lsm-bench-cache-")
    modes = [("exact", dict(buckets=False, cache=None)), ("buckets", dict(buckets=True, cache=None)),
             ("buckets+cold cache", dict(buckets=True, cache=cache)),
             ("buckets+warm cache", dict(buckets=True, cache=cache))]
    rows = []
    for name, p in modes:
        res = subprocess.run([sys.executable, "-m", "experiments.bench_folder", "--checkpoint", args.checkpoint,
                              "--images", str(args.images), "--one", json.dumps(p)], capture_output=True, text=True)
        line = next((ln for ln in reversed(res.stdout.splitlines()) if ln.startswith("{")), None)
        row = dict(mode=name, bucketing=args.bucketing,
                   **(json.loads(line) if line else {"error": res.stderr.strip()[-300:]}))
        if rows and "total_s" in rows[0] and "total_s" in row:   # the baseline: exact shapes, this run
            row["total_over_exact"] = round(row["total_s"] / rows[0]["total_s"], 3)
        print(json.dumps(row), flush=True)
        rows.append(row)
    path = append_rows(args.csv, rows)
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
