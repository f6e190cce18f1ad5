"""What the inference options cost in quality: tiled, bucketed, bfloat16 and self-ensemble vs exact.

    python -m experiments.inference_quality --checkpoint DIR [--checkpoint DIR ...] [--data data/Set5]
        [--tiles 48,96] [--overlap 16] [--csv experiments/results/inference_quality.csv]

For every checkpoint (its scale from its config) and every benchmark image: Y-PSNR (the protocol of
`lsm_jax.evaluate`) of exact whole-image float32 inference, and of each option, with the difference.
The seam check compares, for tiled runs, the error against the HR image in the blend bands (output
pixels where two tiles overlap) with the error of whole-image inference on the same pixels, and with
the interior: `band_excess` = mean |tiled - HR| - mean |whole - HR| over band pixels (8-bit levels).
Run from the repository root, as every experiment runs (see experiments/__init__.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from experiments.results_csv import write_rows
from lsm_jax.evaluation.metrics import sr_scores
from lsm_jax.evaluation.scoring import load_pair, find_pairs
from lsm_jax.inference.forward import Upscaler
from lsm_jax.inference.strategy import InferenceOptions, build_upscale_fn
from lsm_jax.inference.tiling import plan_axis


def band_mask(h: int, w: int, tile: int, overlap: int, align: int, scale: int) -> np.ndarray:
    """(s·h, s·w) bool: output pixels covered by two or more tiles."""
    count = []
    for length in (h, w):
        plan = plan_axis(length, tile, overlap, align)
        c = np.zeros(length * scale, int)
        for a, b in plan.spans:
            c[a * scale:b * scale] += 1
        count.append(c)
    return (count[0][:, None] > 1) | (count[1][None, :] > 1)


def quantised(sr: np.ndarray) -> np.ndarray:
    return np.round(np.clip(sr, 0, 1) * 255.0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", action="append", required=True)
    ap.add_argument("--data", default="data/Set5")
    ap.add_argument("--tiles", default="48,96")
    ap.add_argument("--overlap", type=int, default=16)
    ap.add_argument("--no-bf16", action="store_true")
    ap.add_argument("--no-ensemble", action="store_true")
    ap.add_argument("--csv", default="experiments/results/inference_quality.csv")
    args = ap.parse_args(argv)
    tiles = [int(t) for t in args.tiles.split(",") if t]
    rows = []
    for ckpt in args.checkpoint:
        up = Upscaler.from_checkpoint(ckpt)
        s, align = up.scale, max(up.cfg.split_size)
        methods = {"whole": build_upscale_fn(up, InferenceOptions(max_memory=1 << 50))}
        for t in tiles:
            methods[f"tiled{t}"] = build_upscale_fn(up, InferenceOptions(tile=t, overlap=args.overlap))
        methods["buckets"] = build_upscale_fn(up, InferenceOptions(max_memory=1 << 50, buckets=True))
        if not args.no_ensemble:
            methods["ensemble"] = build_upscale_fn(up, InferenceOptions(max_memory=1 << 50, ensemble=True))
        if not args.no_bf16:
            up16 = Upscaler.from_checkpoint(ckpt, dtype="bfloat16")
            methods["bfloat16"] = build_upscale_fn(up16, InferenceOptions(max_memory=1 << 50))
        _, pairs, _ = find_pairs(args.data, s)
        per = {m: [] for m in methods}
        seams = {m: [] for m in methods if m.startswith("tiled")}
        finite = {m: True for m in methods}
        for pair in pairs:
            lr, hr = load_pair(pair, s)
            x = lr.astype(np.float32) / np.float32(255.0)
            base = None
            for m, fn in methods.items():
                t0 = time.perf_counter()
                sr = np.asarray(fn(x))
                finite[m] &= bool(np.isfinite(sr).all()) and float(sr.max()) > 0.05
                per[m].append(sr_scores(sr, hr, s)[0])
                if m == "whole":
                    base = sr
                if m in seams:
                    band = band_mask(*lr.shape[:2], int(m[5:]), args.overlap, align, s)
                    if band.any():
                        e_t = np.abs(quantised(sr) - hr).mean(axis=2)
                        e_w = np.abs(quantised(base) - hr).mean(axis=2)
                        dev = np.abs(sr - base).max(axis=2) * 255
                        seams[m].append((float(e_t[band].mean() - e_w[band].mean()),
                                         float(e_t[~band].mean() - e_w[~band].mean()) if (~band).any() else 0.0,
                                         float(dev[band].mean()), float(dev[~band].mean()) if (~band).any() else 0.0))
                print(f"{Path(ckpt).name} x{s} {pair.name} {m}: {per[m][-1]:.3f} dB ({time.perf_counter() - t0:.1f} s)",
                      file=sys.stderr, flush=True)
        whole = np.mean(per["whole"])
        for m in methods:
            row = dict(checkpoint=Path(ckpt).parent.parent.name if Path(ckpt).name in ("latest", "best") else Path(ckpt).name,
                       arch=up.cfg.arch, semantics=up.cfg.semantics, scale=s, method=m, set5_psnr=round(float(np.mean(per[m])), 4),
                       delta_db=round(float(np.mean(per[m]) - whole), 4),
                       max_abs_delta_db=round(float(np.max(np.abs(np.array(per[m]) - np.array(per["whole"])))), 4),
                       finite_nonblack=finite[m])
            if m in seams and seams[m]:
                a = np.array(seams[m])
                row.update(band_excess_8bit=round(float(a[:, 0].mean()), 4), interior_excess_8bit=round(float(a[:, 1].mean()), 4),
                           band_dev_8bit=round(float(a[:, 2].mean()), 4), interior_dev_8bit=round(float(a[:, 3].mean()), 4))
            print(json.dumps(row), flush=True)
            rows.append(row)
    path = write_rows(args.csv, rows)
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
