"""Input-pipeline and imresize throughput.

    python -m experiments.bench_data [--seconds 5] [--workers 1 2 4] [--csv experiments/results/bench_data.csv]

(from the repository root, as every experiment runs: see experiments/__init__.py).

1. The grain training loader, in patches/s (HR patches delivered), on two temporary
   DIV2K-style folders: the 9 embedded photographs as they are ("photos", up to
   1411x1411), and the same photographs resized to DIV2K size 2040x1356 ("2K").
   Sources: pre-made LR pairs ('paired'), LR made on the fly ('hr_only') and
   make_dataset records of the same HR + LR files ('records'), at each worker count.
   Baseline: 'paired' at the same worker count, measured in the same run.
   Per source also the bytes read from files per patch, the disk footprint of
   records against the PNGs, and for records where one patch's time goes.
2. imresize (JAX, MATLAB-exact) against Pillow's bicubic resize of the same
   uint8 image, images/s, for the on-the-fly patch and a DIV2K-size frame.
   Baseline: Pillow, measured in the same run.

Each figure is printed with its ratio to the baseline and written to a CSV.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from experiments.results_csv import write_rows
from lsm_jax.data import pipeline as data
from lsm_jax.data.image_io import write_png
from lsm_jax.data.lr_images import make_lr_image
from lsm_jax.data.record_writer import make_dataset

DIV2K_HW = (1356, 2040)
SOURCES = ("paired", "hr_only", "records")
LABELS = {"paired": "pre-made LR", "hr_only": "on-the-fly LR", "records": "records"}


def _make_folder(root: Path, scale: int, resize_to: tuple[int, int] | None) -> None:
    """HR/ + LR_bicubic/X{scale}/ from the embedded photographs, resized to ``resize_to`` (H, W) if given."""
    from PIL import Image

    for name, img in data.embedded_images():
        if resize_to is not None:
            img = np.asarray(Image.fromarray(img).resize(resize_to[::-1], Image.BICUBIC))
        write_png(root / "HR" / f"{name}.png", img)
        write_png(root / "LR_bicubic" / f"X{scale}" / f"{name}x{scale}.png", make_lr_image(img, scale))


def _cfg(root: Path, source: str, workers: int, gt: int, records: str = "records"):
    cfg = data.default_data_config()
    cfg.update(source=source, hr_dir=str(root / "HR"), gt_size=gt, num_workers=workers,
               lr_dir=str(root / "LR_bicubic" / "X{scale}") if source == "paired" else "")
    if source == "records":
        cfg.record_dirs = (str(root / records),)
    return cfg


def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _rchar() -> int:
    """Bytes this process has read through read()/pread() so far (Linux /proc; -1 elsewhere)."""
    try:
        for line in Path("/proc/self/io").read_text().splitlines():
            if line.startswith("rchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return -1


def bytes_per_record(cfg, scale: int, n: int = 24) -> float:
    """File bytes read per source record (one patch), in this process, from the page cache or disk."""
    src = data.build_source(cfg, scale)
    keys = np.random.default_rng(0).integers(0, len(src), n)
    src[int(keys[0])]  # open files, import codecs
    r0 = _rchar()
    for k in keys:
        src[int(k)]
    return (_rchar() - r0) / n if r0 >= 0 else float("nan")


def records_breakdown(cfg, scale: int, gt: int, batch: int, n: int = 64) -> dict[str, float]:
    """Milliseconds per patch for records: shard read (ArrayRecord + zstd), tile decode, crop + augment +
    float conversion, batching, and the host -> device copy of a float32 batch."""
    import jax

    from lsm_jax.data.record_format import decode_tile

    src = data.build_source(cfg, scale)
    folder = src.folders[0]
    plans = [folder.plan(int(j)) for j in np.random.default_rng(1).integers(0, len(folder), n)]
    t0 = time.perf_counter()
    recs = [[folder.data[key] for key, _ in jobs] for _, _, jobs, _ in plans]
    t_read = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for (_, _, jobs, _), rs in zip(plans, recs):
        for (_, dest), r in zip(jobs, rs):
            decode_tile(r, dest)
    t_decode = (time.perf_counter() - t0) / n
    aug = data.PairCropAugment(scale=scale, gt_size=gt)
    el = src[0]
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    outs = [aug.random_map(el, rng) for _ in range(n)]
    t_aug = (time.perf_counter() - t0) / n
    t0 = time.perf_counter()
    for k in range(0, n - batch + 1, batch):
        b = {key: np.stack([o[key] for o in outs[k : k + batch]]) for key in ("lq", "gt")}
    t_batch = (time.perf_counter() - t0) / (n // batch * batch)
    dev = jax.devices()[0]
    jax.device_put(b, dev)["gt"].block_until_ready()
    t0 = time.perf_counter()
    for _ in range(4):
        jax.block_until_ready(jax.device_put(b, dev))
    t_put = (time.perf_counter() - t0) / (4 * batch)
    return {"read shards": t_read * 1e3, "decode tiles": t_decode * 1e3,
            "crop+augment+float": t_aug * 1e3, "batch": t_batch * 1e3, f"to {dev.platform} device": t_put * 1e3}


def bench_loader(root: Path, source: str, workers: int, scale: int, gt: int, batch: int, seconds: float,
                 records: str = "records") -> float:
    """HR patches per second after warm-up (worker start-up and compiles excluded)."""
    cfg = _cfg(root, source, workers, gt, records)
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
    ap.add_argument("--seconds", type=float, default=5.0, help="measuring time per figure")
    ap.add_argument("--cases", nargs="+", default=["photos", "2K"], choices=["photos", "2K"])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--scale", type=int, default=2)
    ap.add_argument("--gt-size", type=int, default=192)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--csv", default="experiments/results/bench_data.csv")
    args = ap.parse_args(argv)

    import jax

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"jax {jax.__version__} on {jax.devices()[0].platform}")
    rows = []

    def report(bench, config, value, unit, baseline_name, baseline_value):
        ratio = value / baseline_value if baseline_value else float("nan")
        rows.append(dict(benchmark=bench, config=config, value=f"{value:.2f}", unit=unit,
                         baseline=baseline_name, ratio=f"{ratio:.3f}"))
        vs = f"x{ratio:6.3f} vs {baseline_name}" if baseline_value else ""
        print(f"  {bench:<9} {config:<44} {value:10.2f} {unit:<9} {vs}")

    cases = [c for c in args.cases]
    for case in cases:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            _make_folder(root, args.scale, DIV2K_HW if case == "2K" else None)
            desc = "9 photos resized to 2040x1356" if case == "2K" else "9 photos up to 1411x1411"
            t0 = time.perf_counter()
            for codec, name in (("up-zstd", "records"), ("raw", "records_raw")):
                make_dataset(root / "HR", root / name, scales=(args.scale,), codec=codec, progress=False,
                             lr_dir=str(root / "LR_bicubic" / "X{scale}"), jobs=min(2, os.cpu_count() or 1))
            t_make = (time.perf_counter() - t0) / 2
            png = _folder_bytes(root / "HR") + _folder_bytes(root / "LR_bicubic")
            print(f"\n[{case}] loader: x{args.scale}, gt_size {args.gt_size}, batch {args.batch}, {desc}; "
                  f"make_dataset {t_make:.1f} s per codec")
            for name in ("records", "records_raw"):
                report("footprint", f"{case}: {name} vs HR+LR PNGs", _folder_bytes(root / name) / 2**20, "MiB",
                       "PNGs", png / 2**20)
            for source in SOURCES:
                b = bytes_per_record(_cfg(root, source, 0, args.gt_size), args.scale)
                report("bytes", f"{case}: {LABELS[source]}", b / 1024, "KiB/patch", "", 0)
            b = bytes_per_record(_cfg(root, "records", 0, args.gt_size, "records_raw"), args.scale)
            report("bytes", f"{case}: records, raw codec", b / 1024, "KiB/patch", "", 0)
            base = {}
            for source in SOURCES:
                if source == "hr_only" and case == "2K":
                    continue  # the same decode as 'paired' plus a bicubic per patch: nothing new at 2K
                for w in args.workers:
                    r = bench_loader(root, source, w, args.scale, args.gt_size, args.batch, args.seconds)
                    base.setdefault(w, r)
                    report("loader", f"{case}: {LABELS[source]}, {w} worker(s)", r, "patch/s",
                           f"paired, {w} worker(s)", base[w])
            for w in args.workers[:1]:
                r = bench_loader(root, "records", w, args.scale, args.gt_size, args.batch, args.seconds,
                                 records="records_raw")
                report("loader", f"{case}: records, raw codec, {w} worker(s)", r, "patch/s",
                       f"paired, {w} worker(s)", base[w])
            br = records_breakdown(_cfg(root, "records", 0, args.gt_size), args.scale, args.gt_size, args.batch)
            tot = sum(br.values())
            for k, v in br.items():
                report("breakdown", f"{case}: records, {k}", v, "ms/patch", "total", tot)

    print("\nimresize (uint8, MATLAB-exact, JAX) vs Pillow BICUBIC on the same image")
    for shape, scale, label in (((args.gt_size, args.gt_size, 3), args.scale, "patch"),
                                ((1356, 2040, 3), 2, "DIV2K frame"), ((1356, 2040, 3), 4, "DIV2K frame")):
        ours, pil, first = bench_resize(shape, scale, args.seconds / 2)
        cfg = f"{label} {shape[0]}x{shape[1]} /{scale}"
        report("pillow", cfg, pil, "img/s", "Pillow", pil)
        report("imresize", cfg, ours, "img/s", "Pillow", pil)
        print(f"  {'':<9} (first call, compile included: {first:.2f} s)")

    out = write_rows(args.csv, rows, fields=list(rows[0]))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
