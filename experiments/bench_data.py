"""Input-pipeline and imresize throughput.

    python experiments/bench_data.py [--seconds 6] [--workers 1 2 4] [--csv runs/bench_data.csv]

1. The grain training loader, in images/s (HR patches delivered), on a temporary
   DIV2K-style folder made from the embedded photographs: pre-made LR pairs
   ('paired') and LR made on the fly ('hr_only'), at each worker count.
   Baseline: 'paired' at the first worker count, measured in the same run.
2. imresize (JAX, MATLAB-exact) against Pillow's bicubic resize of the same
   uint8 image, images/s, for the on-the-fly patch and a DIV2K-size frame.
   Baseline: Pillow, measured in the same run.

Each figure is printed with its ratio to the baseline and written to a CSV.
"""

from __future__ import annotations

import argparse
import csv
import gc
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lsm_jax.data import pipeline as data  # noqa: E402
from lsm_jax.data.image_io import write_png  # noqa: E402
from lsm_jax.data.make_lr import make_lr_image  # noqa: E402


def _make_folder(root: Path, scale: int) -> None:
    """HR/ + LR_bicubic/X{scale}/ from the embedded photographs (9 images, up to 1411x1411)."""
    for name, img in data.embedded_images():
        write_png(root / "HR" / f"{name}.png", img)
        write_png(root / "LR_bicubic" / f"X{scale}" / f"{name}x{scale}.png", make_lr_image(img, scale))


def bench_loader(root: Path, source: str, workers: int, scale: int, gt: int, batch: int, seconds: float) -> float:
    """HR patches per second after warm-up (worker start-up and compiles excluded)."""
    cfg = data.default_data_config()
    cfg.update(source=source, hr_dir=str(root / "HR"), gt_size=gt, num_workers=workers,
               lr_dir=str(root / "LR_bicubic" / "X{scale}") if source == "paired" else "")
    it = iter(data.make_train_loader(cfg, scale=scale, global_batch_size=batch, seed=0))
    for _ in range(max(2, workers)):  # every worker has started and compiled
        next(it)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        b = next(it)
        n += b["gt"].shape[0]
    rate = n / (time.perf_counter() - t0)
    del it
    gc.collect()
    return rate


def bench_resize(shape: tuple[int, int, int], scale: int, seconds: float) -> tuple[float, float, float]:
    """(imresize images/s, Pillow images/s, imresize first-call seconds) for uint8 ``shape`` / scale."""
    from PIL import Image

    from lsm_jax.data.imresize import imresize

    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    t0 = time.perf_counter()
    np.asarray(imresize(img, 1 / scale))
    first = time.perf_counter() - t0

    def rate(fn):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            fn()
            n += 1
        return n / (time.perf_counter() - t0)

    ours = rate(lambda: np.asarray(imresize(img, 1 / scale)))
    pil_img = Image.fromarray(img)
    size = (shape[1] // scale, shape[0] // scale)
    pil = rate(lambda: np.asarray(pil_img.resize(size, Image.BICUBIC)))
    return ours, pil, first


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=6.0, help="measuring time per figure")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--gt-size", type=int, default=192)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--csv", default="runs/bench_data.csv")
    args = ap.parse_args(argv)

    import jax

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"jax {jax.__version__} on {jax.devices()[0].platform}")
    rows = []

    def report(bench, config, value, unit, baseline_name, baseline_value):
        ratio = value / baseline_value if baseline_value else float("nan")
        rows.append(dict(benchmark=bench, config=config, value=f"{value:.2f}", unit=unit,
                         baseline=baseline_name, ratio=f"{ratio:.3f}"))
        print(f"  {bench:<9} {config:<34} {value:10.2f} {unit:<8} x{ratio:6.3f} vs {baseline_name}")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _make_folder(root, args.scale)
        print(f"\nloader: x{args.scale}, gt_size {args.gt_size}, batch {args.batch}, 9 PNGs up to 1411x1411")
        base = None
        for source in ("paired", "hr_only"):
            for w in args.workers:
                r = bench_loader(root, source, w, args.scale, args.gt_size, args.batch, args.seconds)
                if base is None:
                    base = (f"paired, {w} worker(s)", r)
                report("loader", f"{'pre-made LR' if source == 'paired' else 'on-the-fly LR'}, {w} worker(s)",
                       r, "img/s", *base)

    print("\nimresize (uint8, MATLAB-exact, JAX) vs Pillow BICUBIC on the same image")
    for shape, scale, label in (((args.gt_size, args.gt_size, 3), args.scale, "patch"),
                                ((1356, 2040, 3), 2, "DIV2K frame"), ((1356, 2040, 3), 4, "DIV2K frame")):
        ours, pil, first = bench_resize(shape, scale, args.seconds / 2)
        cfg = f"{label} {shape[0]}x{shape[1]} /{scale}"
        report("pillow", cfg, pil, "img/s", "Pillow", pil)
        report("imresize", cfg, ours, "img/s", "Pillow", pil)
        print(f"  {'':<9} (first call, compile included: {first:.2f} s)")

    out = Path(args.csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
