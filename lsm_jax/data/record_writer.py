"""Cut HR images (and their LR copies) into sub-images stored in ArrayRecord shards (the command is
`lsm_jax.make_dataset`).

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

import json
import math
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any, Callable

import numpy as np

from lsm_jax.data.image_io import ImageFileError, list_images, read_rgb8
from lsm_jax.data.record_format import (CODECS, FORMAT, INDEX_NAME, encode_tile, load_index, shard_name,
                                        subimage_hash, write_json_atomic)
from lsm_jax.data.subimages import axis_windows, check_settings, tile_bounds, unit_of, usable_size

__all__ = ["image_records",  "make_dataset"]

_PLAN = "plan.json"
_PARTS = "parts"


def _load_lr(hr: np.ndarray, hr_path: str, lr_paths: dict[int, str] | None, scales: list[int]) -> dict[int, np.ndarray]:
    """LR at every scale: the user's files (shape checked) or MATLAB bicubic of the whole modcropped image."""
    out = {}
    for s in scales:
        want = (hr.shape[0] // s, hr.shape[1] // s)
        if lr_paths is None:
            from lsm_jax.data.lr_images import make_lr_image  # JAX: only for made LR

            lr = make_lr_image(hr, s)
        else:
            lr = read_rgb8(lr_paths[s])
            if lr.shape[:2] != want:
                raise ImageFileError(lr_paths[s], f"LR is {lr.shape[0]}x{lr.shape[1]} but HR {hr_path} is "
                                     f"{hr.shape[0]}x{hr.shape[1]}, so x{s} needs {want[0]}x{want[1]}")
        out[s] = lr
    return out


def image_records(hr_path: str, lr_paths: dict[int, str] | None, scales: list[int], crop: int, step: int,
                  codec: str) -> tuple[dict[str, Any], list[bytes]]:
    """One image's index entry (without shard placement) and its records, tile by tile.

    Raises ImageFileError naming the file when it cannot be read, does not match its LR, or is too small.
    """
    hr = read_rgb8(hr_path)
    lrs = _load_lr(hr, hr_path, lr_paths, scales)
    unit = unit_of(scales)
    hu, wu = usable_size(hr.shape[0], scales), usable_size(hr.shape[1], scales)
    ys, sh = axis_windows(hu, crop, step, unit)
    xs, sw = axis_windows(wu, crop, step, unit)
    if not ys or not xs:
        raise ImageFileError(hr_path, f"{hr.shape[0]}x{hr.shape[1]} is smaller than {unit} (lcm of the scales)")
    rows, cols = tile_bounds(ys, sh), tile_bounds(xs, sw)
    row_filter = CODECS[codec][0]
    records = []
    for r0, r1 in zip(rows[:-1], rows[1:]):
        for c0, c1 in zip(cols[:-1], cols[1:]):
            records.append(encode_tile(hr[r0:r1, c0:c1], row_filter))
            for s in scales:
                records.append(encode_tile(lrs[s][r0 // s : r1 // s, c0 // s : c1 // s], row_filter))
    subs = []
    for y in ys:
        for x in xs:
            arrays = [hr[y : y + sh, x : x + sw]] + [lrs[s][y // s : (y + sh) // s, x // s : (x + sw) // s]
                                                     for s in scales]
            subs.append([y, x, subimage_hash(arrays)])
    entry = {"source": Path(hr_path).name, "orig_size": list(hr.shape[:2]), "size": [hu, wu],
             "sub_size": [sh, sw], "rows": rows, "cols": cols, "records": len(records), "subimages": subs}
    return entry, records


def _shard_done(out: Path, k: int) -> bool:
    part = out / _PARTS / f"{k:05d}.json"
    if not part.is_file():
        return False
    info = json.loads(part.read_text())
    f = out / info["file"]
    return f.is_file() and f.stat().st_size == info["bytes"]


def _write_shard(out: str, k: int, plan: dict[str, Any], progress=None) -> None:
    """Write shard ``k`` (temporary name, renamed when closed) and its part of the index."""
    from array_record.python.array_record_module import ArrayRecordWriter

    out = Path(out)
    name = shard_name(k, len(plan["shards"]))
    tmp = out / (name + ".tmp")
    writer = ArrayRecordWriter(str(tmp), CODECS[plan["codec"]][1])
    images, bad, n = [], [], 0
    try:
        for hr_path, lr_paths in plan["shards"][k]:
            lr = None if lr_paths is None else {int(s): p for s, p in lr_paths.items()}
            try:
                entry, records = image_records(hr_path, lr, plan["scales"], plan["crop"], plan["step"], plan["codec"])
            except ImageFileError as e:
                bad.append(str(e))
                print(f"bad file: {e}", file=sys.stderr, flush=True)
            else:
                for r in records:
                    writer.write(r)
                images.append({**entry, "shard": k, "first_record": n})
                n += len(records)
            if progress is not None:
                progress(1)
    finally:
        writer.close()
    os.replace(tmp, out / name)
    write_json_atomic(out / _PARTS / f"{k:05d}.json", {"file": name, "records": n,
                                                       "bytes": (out / name).stat().st_size,
                                                       "images": images, "bad": bad})


def _worker(args) -> int:
    out, k, plan, queue = args
    _write_shard(out, k, plan, progress=queue.put)
    return k


def _make_plan(hr_dir, lr_dir, lr_tmpl, scales, crop, step, shards, codec) -> dict[str, Any]:
    hr_paths = list_images(hr_dir)
    if not hr_paths:
        raise ImageFileError(hr_dir, "no images")
    jobs = []
    missing = []
    lr_by_scale = {}
    if lr_dir is not None:
        for s in scales:
            d = Path(str(lr_dir).replace("{scale}", str(s)))
            lr_by_scale[s] = {p.stem: str(p) for p in list_images(d)}
    for hp in hr_paths:
        lr = None
        if lr_dir is not None:
            lr = {}
            for s in scales:
                stem = lr_tmpl.format(hp.stem, scale=s)
                if stem not in lr_by_scale[s]:
                    missing.append(f"{stem}.* (x{s}, for {hp.name})")
                lr[str(s)] = lr_by_scale[s].get(stem)
        jobs.append([str(hp), lr])
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise ImageFileError(lr_dir, f"{len(missing)} LR file(s) missing: {shown}")
    n = max(1, min(int(shards), len(jobs)))
    return {"format": FORMAT, "crop": crop, "step": step, "scales": list(scales), "codec": codec,
            "lr": "bicubic" if lr_dir is None else "files", "hr_dir": str(hr_dir),
            "shards": [jobs[k * len(jobs) // n : (k + 1) * len(jobs) // n] for k in range(n)]}


def make_dataset(hr_dir, out_dir, *, scales=(2, 3, 4), lr_dir=None, lr_tmpl="{}x{scale}", crop=480, step=240,
                 shards: int | None = None, jobs: int | None = None, codec="up-zstd",
                 progress: bool = True, on_shard: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Write a records folder; returns its index (``index['bad']`` lists the files that were skipped).

    ``jobs`` processes write shards in parallel (1: in this process). A rerun over the same ``out_dir`` with
    the same inputs and settings keeps the finished shards; other settings are an error.
    """
    scales = sorted({int(s) for s in scales})
    if not scales or min(scales) < 1:
        raise ValueError(f"--scales must be positive integers, got {scales}")
    check_settings(crop, step, scales)
    if codec not in CODECS:
        raise ValueError(f"--codec must be one of {sorted(CODECS)}, got {codec!r}")
    if lr_dir is not None and len(scales) > 1 and "{scale}" not in str(lr_dir):
        raise ValueError(f"--lr {lr_dir} has no '{{scale}}' but --scales names {len(scales)} scales")
    jobs = max(1, int(jobs or os.cpu_count() or 1))
    n_images = len(list_images(hr_dir))
    shards = shards or max(min(n_images, jobs), math.ceil(n_images / 50))
    plan = _make_plan(hr_dir, lr_dir, lr_tmpl, scales, crop, step, shards, codec)
    out = Path(out_dir)
    (out / _PARTS).mkdir(parents=True, exist_ok=True)
    plan_path = out / _PLAN
    if plan_path.is_file():
        if json.loads(plan_path.read_text()) != json.loads(json.dumps(plan)):
            raise ValueError(f"--out {out} holds records made from other files or settings; "
                             "use another --out or delete it")
    else:
        write_json_atomic(plan_path, plan)
    todo = [k for k in range(len(plan["shards"])) if not _shard_done(out, k)]
    from tqdm import tqdm

    total = sum(len(plan["shards"][k]) for k in todo)
    with tqdm(total=total, desc="make_dataset", unit="img", disable=not progress) as bar:
        if jobs == 1 or len(todo) <= 1:
            for k in todo:
                _write_shard(str(out), k, plan, progress=bar.update)
                if on_shard:
                    on_shard(k)
        else:
            ctx = multiprocessing.get_context("spawn")  # JAX (bicubic) in the workers: no fork
            with ctx.Manager() as mgr, ProcessPoolExecutor(min(jobs, len(todo)), mp_context=ctx) as ex:
                queue = mgr.Queue()
                futs = [ex.submit(_worker, (str(out), k, plan, queue)) for k in todo]
                done = 0
                while done < total:
                    bar.update(queue.get())
                    done += 1
                for f in futs:
                    k = f.result()
                    if on_shard:
                        on_shard(k)
    return _write_index(out, plan)


def _write_index(out: Path, plan: dict[str, Any]) -> dict[str, Any]:
    shards, images, bad = [], [], []
    for k in range(len(plan["shards"])):
        part = json.loads((out / _PARTS / f"{k:05d}.json").read_text())
        shards.append({"file": part["file"], "records": part["records"], "bytes": part["bytes"]})
        images += part["images"]
        bad += part["bad"]
    index = {k: plan[k] for k in ("format", "crop", "step", "scales", "codec", "lr", "hr_dir")}
    index.update(unit=unit_of(plan["scales"]), arrays=["hr"] + [f"x{s}" for s in plan["scales"]],
                 num_subimages=sum(len(im["subimages"]) for im in images), num_images=len(images),
                 shards=shards, images=images, bad=bad)
    write_json_atomic(out / INDEX_NAME, index)
    load_index(out)  # the check a reader makes
    return index


def source_bytes(hr_dir: str, lr_dir, scales) -> int:
    total = sum(p.stat().st_size for p in list_images(hr_dir))
    if lr_dir is not None:
        for s in scales:
            total += sum(p.stat().st_size for p in list_images(str(lr_dir).replace("{scale}", str(s))))
    return total
