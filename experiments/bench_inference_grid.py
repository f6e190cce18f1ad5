"""Time and peak memory of inference against LR size: whole/tiled, float32/bfloat16, ±self-ensemble.

    python -m experiments.bench_inference_grid [--variants lsm_s,lsm_light] [--sides 128,256,512,1024]
        [--tiled-sides 2048] [--dtypes float32,bfloat16] [--ensemble both|off|on] [--budget 4GB]
        [--semantics reference] [--timeout 900] [--csv experiments/results/bench_inference_grid.csv]

Each point runs in a fresh process (random weights, batch 1, x4), so `peak_rss_gb` is that
process's peak resident memory (ru_maxrss), JAX runtime included. A point first runs once to compile
(for tiled points: one tile-sized image), then times one full call: `time_s`. `whole` points whose
estimated memory exceeds `--whole-limit` are skipped (they would not fit this machine). The CSV and a
plot (time and memory against megapixels) go to experiments/results/. Run from the repository root, as
every experiment runs (see experiments/__init__.py).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from experiments.results_csv import write_rows


def run_point(p: dict) -> dict:
    """One measurement, in this process."""
    import jax
    import numpy as np
    from flax import nnx

    from lsm_jax.inference.budget import parse_size
    from lsm_jax.inference.forward import Upscaler
    from lsm_jax.inference.strategy import InferenceOptions, build_upscale_fn
    from lsm_jax.model.network import LSM
    from lsm_jax.model.variants import network_config

    cfg = network_config(p["variant"], p["scale"])
    cfg.semantics, cfg.dtype = p["semantics"], p["dtype"]
    up = Upscaler(LSM(cfg, rngs=nnx.Rngs(0)), cfg)
    budget = parse_size(p["budget"]) if p["mode"] == "tiled" else 1 << 50
    opts = InferenceOptions(max_memory=budget, ensemble=p["ensemble"], overlap=16)
    fn = build_upscale_fn(up, opts)
    side = p["side"]
    lr = np.random.default_rng(0).random((side, side, 3), dtype=np.float32)
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    tile = fn.tile_for(side, side)
    t0 = time.perf_counter()
    warm = lr if tile is None else lr[:tile, :tile]
    jax.block_until_ready(fn(warm))                         # compile (the tile shape for tiled runs)
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = fn(lr)
    elapsed = time.perf_counter() - t0
    finite = bool(np.isfinite(out).all())
    return dict(p, tile=tile or side, time_s=round(elapsed, 3), first_call_s=round(compile_s, 2),
                mpix=round(side * side / 1e6, 4), peak_rss_gb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 3),
                rss_before_gb=round(rss0, 3), finite=finite, jax=jax.__version__)


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    keys = sorted({(r["variant"], r["mode"], r["dtype"], r["ensemble"]) for r in rows})
    for key in keys:
        pts = sorted((r["mpix"], r["time_s"], r["peak_rss_gb"]) for r in rows
                     if (r["variant"], r["mode"], r["dtype"], r["ensemble"]) == key)
        label = f"{key[0]} {key[1]} {key[2]}{' +ens' if key[3] else ''}"
        ax1.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=label)
        ax2.plot([p[0] for p in pts], [p[2] for p in pts], "o-", label=label)
    ax1.set(xlabel="LR megapixels", ylabel="time (s)", xscale="log", yscale="log", title="inference time (x4)")
    ax2.set(xlabel="LR megapixels", ylabel="peak RSS (GB)", xscale="log", title="peak memory (x4)")
    ax1.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--variants", default="lsm_s,lsm_light")
    ap.add_argument("--sides", default="128,256,512,1024")
    ap.add_argument("--tiled-sides", default="2048", help="sides measured tiled only")
    ap.add_argument("--modes", default="whole,tiled")
    ap.add_argument("--dtypes", default="float32,bfloat16")
    ap.add_argument("--ensemble", default="both", choices=["both", "off", "on"])
    ap.add_argument("--budget", default="4GB", help="memory budget of the tiled points")
    ap.add_argument("--whole-limit", default="16GB", help="skip whole-image points estimated above this")
    ap.add_argument("--semantics", default="reference", choices=["reference", "paper"])
    ap.add_argument("--timeout", type=int, default=900, help="seconds per point")
    ap.add_argument("--csv", default="experiments/results/bench_inference_grid.csv")
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(run_point(json.loads(args.one))), flush=True)
        return 0

    from lsm_jax.inference.budget import parse_size, whole_image_bytes
    from lsm_jax.model.variants import network_config

    ens = {"both": [False, True], "off": [False], "on": [True]}[args.ensemble]
    points = []
    for variant in args.variants.split(","):
        for side in [int(s) for s in args.sides.split(",") if s] + [int(s) for s in args.tiled_sides.split(",") if s]:
            for mode in args.modes.split(","):
                if mode == "whole" and str(side) in args.tiled_sides.split(","):
                    continue
                if mode == "whole" and whole_image_bytes(network_config(variant, 4), side, side) > parse_size(args.whole_limit):
                    print(json.dumps({"skip": f"{variant} {side}² whole: estimated above {args.whole_limit}"}))
                    continue
                for dtype in args.dtypes.split(","):
                    for e in ens:
                        points.append(dict(variant=variant, scale=4, side=side, mode=mode, dtype=dtype, ensemble=e,
                                           budget=args.budget, semantics=args.semantics))
    rows = []
    for p in points:
        try:
            res = subprocess.run([sys.executable, "-m", "experiments.bench_inference_grid", "--one", json.dumps(p)],
                                 capture_output=True, text=True, timeout=args.timeout)
            line = next((ln for ln in reversed(res.stdout.splitlines()) if ln.startswith("{")), None)
            row = json.loads(line) if line else dict(p, error=res.stderr.strip().splitlines()[-1:])
        except subprocess.TimeoutExpired:
            row = dict(p, error=f"timeout {args.timeout}s")
        print(json.dumps(row), flush=True)
        if "error" not in row:
            rows.append(row)
    if rows:
        path = write_rows(args.csv, rows, fields=list(rows[0]))
        _plot(rows, path.with_suffix(".png"))
        print(f"wrote {path} and {path.with_suffix('.png')}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
