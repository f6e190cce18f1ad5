"""The 'records' training source: sub-images read from ``make_dataset`` folders with grain's ArrayRecord source.

One or more folders, each with a weight (its share of the records drawn; default: its share of the
sub-images, i.e. plain concatenation, as BasicSR's DF2K = DIV2K + Flickr2K). Each host takes a contiguous
``1 / shard_count`` of every folder's sub-images (the rest dropped), so hosts read disjoint sub-images even
when a small folder is drawn more often than once per epoch.
"""

from __future__ import annotations

import bisect
from pathlib import Path
from typing import Any, Sequence

import grain
import numpy as np

from lsm_jax.data.record_format import decode_tile, load_index
from lsm_jax.data.subimages import check_gt_size

__all__ = ["RecordsFolder", "RecordsSource"]


class RecordsFolder:
    """One records folder opened for reading at one scale: its index as arrays, and its ArrayRecord shards."""

    def __init__(self, folder: str | Path, scale: int, gt_size: int):
        self.folder = str(folder)
        index = load_index(folder)
        if scale not in index["scales"]:
            raise ValueError(f"{folder}: records hold x{'/x'.join(map(str, index['scales']))}, not x{scale}; "
                             f"remake them with --scales including {scale}")
        check_gt_size(index["crop"], index["step"], gt_size, where=f"records {folder}")
        paths = []
        for sh in index["shards"]:
            p = Path(folder) / sh["file"]
            if not p.is_file() or p.stat().st_size != sh["bytes"]:
                raise FileNotFoundError(f"{p}: missing or not the size the index records ({sh['bytes']} bytes)")
            paths.append(str(p))
        self.crop, self.step, self.scale = int(index["crop"]), int(index["step"]), int(scale)
        self.n_arrays = len(index["arrays"])
        self.lr_array = 1 + index["scales"].index(scale)
        offsets = np.cumsum([0] + [sh["records"] for sh in index["shards"]])
        # Per image: (first global record key, tile row bounds, tile column bounds, sub-image (h, w), name).
        self.images = []
        sub_image, sub_y, sub_x, small = [], [], [], []
        for i, im in enumerate(index["images"]):
            sh, sw = im["sub_size"]
            if min(sh, sw) < gt_size:
                small.append(f"{im['source']} ({sh}x{sw})")
            self.images.append((int(offsets[im["shard"]] + im["first_record"]), im["rows"], im["cols"],
                                (sh, sw), im["source"]))
            for y, x, _ in im["subimages"]:
                sub_image.append(i)
                sub_y.append(y)
                sub_x.append(x)
        if small:
            raise ValueError(f"{folder}: {len(small)} image(s) give sub-images smaller than gt_size {gt_size}: "
                             f"{', '.join(small[:5])}{' ...' if len(small) > 5 else ''}")
        self.sub = np.array([sub_image, sub_y, sub_x], np.int64).T.reshape(-1, 3)  # (n, 3): image, y, x
        self.data = grain.sources.ArrayRecordDataSource(paths)

    def __len__(self) -> int:
        return len(self.sub)

    def plan(self, j: int) -> tuple[np.ndarray, np.ndarray, list[tuple[int, np.ndarray]], str]:
        """Sub-image ``j`` as empty HR and LR arrays, the (record key, destination view) of each tile, its name."""
        i, y, x = (int(v) for v in self.sub[j])
        base, rows, cols, (h, w), name = self.images[i]
        s = self.scale
        hr = np.empty((h, w, 3), np.uint8)
        lr = np.empty((h // s, w // s, 3), np.uint8)
        r0, r1 = bisect.bisect_left(rows, y), bisect.bisect_left(rows, y + h)
        c0, c1 = bisect.bisect_left(cols, x), bisect.bisect_left(cols, x + w)
        ncols = len(cols) - 1
        jobs = []
        for r in range(r0, r1):
            ty0, ty1 = rows[r] - y, rows[r + 1] - y
            for c in range(c0, c1):
                tx0, tx1 = cols[c] - x, cols[c + 1] - x
                key = base + (r * ncols + c) * self.n_arrays
                jobs.append((key, hr[ty0:ty1, tx0:tx1]))
                jobs.append((key + self.lr_array, lr[ty0 // s : ty1 // s, tx0 // s : tx1 // s]))
        return hr, lr, jobs, f"{self.folder}/{name}@{y},{x}"

    def read(self, j: int) -> dict[str, Any]:
        """Sub-image ``j``: ``{'hr': uint8 (h, w, 3), 'lr': uint8 (h/s, w/s, 3), 'name': 'dir/source@y,x'}``."""
        hr, lr, jobs, name = self.plan(j)
        for key, dest in jobs:
            decode_tile(self.data[key], dest)
        return {"hr": hr, "lr": lr, "name": name}


class RecordsSource:
    """Random-access grain source over weighted records folders, already split for this host.

    Record ``k`` of the mixture lies in folder ``d`` (folders take consecutive blocks of ``n_d`` keys,
    ``n_d / sum(n)`` = the folder's weight, ``n_d`` >= its sub-images on this host); key ``j`` of the block maps
    to sub-image ``j * len_d // n_d``, so every sub-image is drawn once or more per epoch.
    """

    def __init__(self, folders: Sequence[str], scale: int, gt_size: int, weights: Sequence[float] | None = None,
                 shard_index: int = 0, shard_count: int = 1):
        if not folders:
            raise ValueError("data config: source='records' needs record_dirs (one or more make_dataset folders)")
        self.folders = [RecordsFolder(f, scale, gt_size) for f in folders]
        if weights:
            if len(weights) != len(folders):
                raise ValueError(f"data config: {len(weights)} record_weights for {len(folders)} record_dirs")
            if min(weights) <= 0:
                raise ValueError(f"data config: record_weights must be positive, got {list(weights)}")
        self.weights = tuple(float(w) for w in weights) if weights else None
        self.shard = (int(shard_index), int(shard_count))
        # This host's contiguous part of each folder (drop remainder: every host draws as many).
        self.parts = []
        for f in self.folders:
            per = len(f) // shard_count
            if per == 0:
                raise ValueError(f"{f.folder}: {len(f)} sub-images cannot be split into {shard_count} host shards")
            self.parts.append((per * shard_index, per))
        lens = np.array([n for _, n in self.parts], np.float64)
        p = np.array(self.weights, np.float64) if self.weights else lens
        p = p / p.sum()
        total = int(np.ceil(np.max(lens / p) - 1e-9))
        self.slots = [max(int(round(pi * total)), int(n)) for pi, n in zip(p, lens)]
        self.starts = np.cumsum([0] + self.slots)

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, k: int) -> dict[str, Any]:
        k = int(k)
        d = int(np.searchsorted(self.starts, k, side="right")) - 1
        start, n = self.parts[d]
        j = (k - int(self.starts[d])) * n // self.slots[d]
        return self.folders[d].read(start + j)

    def __repr__(self) -> str:
        dirs = [f.folder for f in self.folders]
        return (f"RecordsSource(dirs={dirs}, weights={self.weights}, scale={self.folders[0].scale}, "
                f"shard={self.shard[0]}/{self.shard[1]}, n={len(self)})")
