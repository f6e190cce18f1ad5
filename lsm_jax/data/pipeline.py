"""Training input pipeline on grain: paired or HR-only folders, records folders, or the embedded photographs.

Per record: decode (in the source, on read threads) -> random aligned crop ->
LR made on the fly when there is none (MATLAB bicubic of the HR crop, JAX on
CPU) -> hflip / vflip / HW-transpose with p = 0.5 each -> float32 [0, 1].
The 'records' source (:mod:`lsm_jax.data.records`) reads pre-cut sub-images
with their LR from ArrayRecord shards instead of decoding whole PNGs.
Records are shuffled by a seeded :class:`grain.samplers.IndexSampler`, each
host reads its own shard, and worker processes run the per-record work.

The loader's iterator checkpoints with ``state = it.get_state()`` (JSON
``bytes``; ``state.decode()`` is a plain string for orbax's JSON handlers) and
resumes on exactly the next batch with ``it.set_state(state)``. A restore needs
the same seed, sources, shard and ``num_workers`` (grain checks them).
"""

from __future__ import annotations

import dataclasses
import functools
import multiprocessing
from pathlib import Path
from typing import Any

import grain
import ml_collections
import numpy as np

from lsm_jax.data.defaults import SOURCES as _SOURCES, default_data_config  # noqa: F401
from lsm_jax.data.image_io import ImageFileError, check_images, image_size, list_images
from lsm_jax.data.records import RecordsSource
from lsm_jax.data.sources import (EMBEDDED_NAMES, EmbeddedSource, EnlargedSource, HrFolderSource,  # noqa: F401
                                  PairedFolderSource, _check_pair_shape, embedded_images)

__all__ = [
    "EMBEDDED_NAMES", "default_data_config", "embedded_images", "make_train_loader", "build_source",
    "check_dataset", "EmbeddedSource", "HrFolderSource", "PairedFolderSource", "EnlargedSource", "RecordsSource",
    "PairCropAugment",
]

# The real photographs inside the scikit-image wheel (RGB, no download needed).
# ---------------------------------------------------------------------------
# Per-record transform.


def _pin_jax_to_cpu_in_worker() -> None:
    """In a grain worker, keep JAX on the CPU (a worker must not grab the accelerator)."""
    if multiprocessing.parent_process() is not None:
        import jax

        try:
            jax.config.update("jax_platforms", "cpu")
        except Exception:  # backends already up: nothing to change
            pass


@functools.lru_cache(maxsize=1)
def _cpu_device():
    _pin_jax_to_cpu_in_worker()
    import jax

    return jax.local_devices(backend="cpu")[0]


def lr_from_hr_crop(hr: np.ndarray, scale: int) -> np.ndarray:
    """On-the-fly LR: MATLAB bicubic (uint8 path) of an HR crop (h, w, 3) whose sides divide by ``scale``."""
    import jax

    from lsm_jax.data.imresize import imresize

    with jax.default_device(_cpu_device()):
        return np.asarray(imresize(hr, 1.0 / scale))


@dataclasses.dataclass(frozen=True)
class PairCropAugment(grain.transforms.RandomMap):
    """Random aligned crop, on-the-fly LR if needed, flips/transpose, uint8 -> float32 [0, 1].

    Input record: ``{'hr': uint8 (H, W, 3), 'lr'?: uint8 (H//s, W//s, 3), 'name': str}``.
    Output: ``{'lq': float32 (gt/s, gt/s, 3), 'gt': float32 (gt, gt, 3)}``.
    """

    scale: int
    gt_size: int
    use_hflip: bool = True
    use_rot: bool = True

    def random_map(self, element: dict[str, Any], rng: np.random.Generator) -> dict[str, np.ndarray]:
        s, gt = self.scale, self.gt_size
        lq = gt // s
        hr, name = element["hr"], element.get("name", "?")
        if "lr" in element:
            lr = element["lr"]
            h, w = lr.shape[:2]
            if h < lq or w < lq:
                raise ImageFileError(name, f"LR {h}x{w} is smaller than the LR patch {lq} (gt_size {gt} / x{s})")
            top, left = int(rng.integers(0, h - lq + 1)), int(rng.integers(0, w - lq + 1))
            lr_c = lr[top : top + lq, left : left + lq]
            hr_c = hr[top * s : (top + lq) * s, left * s : (left + lq) * s]
        else:
            h, w = hr.shape[:2]
            if h < gt or w < gt:
                raise ImageFileError(name, f"HR {h}x{w} is smaller than gt_size {gt}")
            top, left = int(rng.integers(0, h - gt + 1)), int(rng.integers(0, w - gt + 1))
            hr_c = hr[top : top + gt, left : left + gt]
            # LR of the crop itself (before augmentation), as a pre-made pair would be.
            lr_c = lr_from_hr_crop(hr_c, s)
        hflip, vflip, rot = rng.random(3) < 0.5
        pair = [hr_c, lr_c]
        if self.use_hflip and hflip:
            pair = [a[:, ::-1] for a in pair]
        if self.use_rot and vflip:
            pair = [a[::-1] for a in pair]
        if self.use_rot and rot:
            pair = [a.transpose(1, 0, 2) for a in pair]
        # Division, not a multiply by 1/255: the same float32 values as BasicSR and `evaluate`.
        to_f = lambda a: np.ascontiguousarray(a, dtype=np.float32) / np.float32(255.0)  # noqa: E731
        return {"lq": to_f(pair[1]), "gt": to_f(pair[0])}


# ---------------------------------------------------------------------------
# Building sources and the loader.


def _cfg(cfg) -> ml_collections.ConfigDict:
    """``cfg`` over the defaults, so configs may leave fields out; unknown fields are an error."""
    c = default_data_config()
    unknown = sorted(set(cfg.keys()) - set(c.keys()))
    if unknown:
        raise ValueError(f"data config: unknown field(s) {unknown}; known: {sorted(c.keys())}")
    for k in cfg.keys():
        v = cfg[k]
        if isinstance(c[k], tuple) and isinstance(v, str):  # one folder given as a plain string
            v = (v,) if v else ()
        c[k] = v
    return c


def _paired_paths(c, scale: int) -> tuple[list[Path], list[Path]]:
    if not c.hr_dir or not c.lr_dir:
        raise ValueError("data config: source='paired' needs hr_dir and lr_dir")
    lr_dir = Path(str(c.lr_dir).replace("{scale}", str(scale)))
    hr_paths = list_images(c.hr_dir)
    if not hr_paths:
        raise ImageFileError(c.hr_dir, "no images")
    lr_by_stem = {p.stem: p for p in list_images(lr_dir)}
    lr_paths, missing = [], []
    for hp in hr_paths:
        try:
            stem = c.filename_tmpl.format(hp.stem, scale=scale)
        except (IndexError, KeyError) as e:
            raise ValueError(f"data config: bad filename_tmpl {c.filename_tmpl!r} ({e}); use e.g. '{{}}x{{scale}}'")
        lp = lr_by_stem.get(stem)
        if lp is None:
            missing.append(f"{stem}.* (for {hp.name})")
        lr_paths.append(lp)
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise ImageFileError(lr_dir, f"{len(missing)} LR file(s) missing: {shown}")
    return hr_paths, lr_paths


def check_dataset(source, scale: int, gt_size: int, threads: int = 8) -> list[str]:
    """Decode every file of a source and check pair shapes and patch sizes; returns the problems."""
    if isinstance(source, EnlargedSource):
        source = source.source
    if isinstance(source, (EmbeddedSource, RecordsSource)):  # records: shards checked on opening
        return []
    if isinstance(source, PairedFolderSource):
        bad = check_images(source.hr_paths + source.lr_paths, threads)
        problems = list(bad.values())
        for hp, lp in zip(source.hr_paths, source.lr_paths):
            if hp in bad or lp in bad:
                continue
            try:
                hw, lw = image_size(hp), image_size(lp)
                _check_pair_shape(hp, hw, lp, lw, scale)
                if min(lw) < gt_size // scale:
                    problems.append(f"{lp}: LR {lw[0]}x{lw[1]} is smaller than the LR patch {gt_size // scale}")
            except ImageFileError as e:
                problems.append(str(e))
        return problems
    bad = check_images(source.hr_paths, threads)
    problems = list(bad.values())
    for hp in source.hr_paths:
        if hp not in bad and min(image_size(hp)) < gt_size:
            problems.append(f"{hp}: smaller than gt_size {gt_size}")
    return problems


def build_source(cfg: ml_collections.ConfigDict, scale: int, shard_index: int = 0, shard_count: int = 1):
    """The random-access source named by ``cfg.source`` (enlarged, and checked if ``cfg.check_files``).

    Only 'records' uses ``shard_index`` / ``shard_count``: it splits itself per host (the other sources are
    split by the sampler).
    """
    c = _cfg(cfg)
    if c.source == "records":
        src = RecordsSource(tuple(c.record_dirs), scale, int(c.gt_size), tuple(c.record_weights),
                            shard_index=shard_index, shard_count=shard_count)
    elif c.source == "embedded":
        src = EmbeddedSource()
    elif c.source == "hr_only":
        if not c.hr_dir:
            raise ValueError("data config: source='hr_only' needs hr_dir")
        paths = list_images(c.hr_dir)
        if not paths:
            raise ImageFileError(c.hr_dir, "no images")
        src = HrFolderSource(paths)
    elif c.source == "paired":
        src = PairedFolderSource(*_paired_paths(c, scale), scale=scale)
    else:
        raise ValueError(f"data config: source must be one of {_SOURCES}, got {c.source!r}")
    if c.check_files:
        problems = check_dataset(src, scale, c.gt_size)
        if problems:
            shown = "\n  ".join(problems[:20]) + (f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else "")
            raise ImageFileError(c.hr_dir, f"data check failed, {len(problems)} problem(s):\n  {shown}")
    ratio = int(c.dataset_enlarge_ratio)
    if ratio < 1:
        raise ValueError(f"data config: dataset_enlarge_ratio must be >= 1, got {ratio}")
    return EnlargedSource(src, ratio) if ratio > 1 else src


def _absl_flags_parsed_workaround() -> None:
    """grain 0.2.18 reads an absl flag when starting workers with JAX loaded and raises
    ``UnparsedFlagAccessError`` outside ``absl.app`` (google/grain#1355, fixed upstream).
    Marking the flags parsed keeps every default; a later ``absl.app`` parse still works."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


def make_train_loader(
    cfg: ml_collections.ConfigDict,
    *,
    scale: int,
    global_batch_size: int,
    seed: int,
    shard_index: int = 0,
    shard_count: int = 1,
) -> grain.DataLoader:
    """Infinite, shuffled, sharded training loader.

    Yields ``{'lq': float32 (b, gt/s, gt/s, 3), 'gt': float32 (b, gt, gt, 3)}`` in [0, 1],
    with ``b = global_batch_size // shard_count`` (this process's share). Pass
    ``shard_index = jax.process_index()`` and ``shard_count = jax.process_count()``.
    """
    c = _cfg(cfg)
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    scale = int(scale)
    if c.gt_size < scale or c.gt_size % scale:
        raise ValueError(f"data config: gt_size {c.gt_size} must be a positive multiple of the scale {scale}")
    if not 0 <= shard_index < shard_count:
        raise ValueError(f"shard_index {shard_index} must be in [0, shard_count={shard_count})")
    if global_batch_size < shard_count or global_batch_size % shard_count:
        raise ValueError(f"global_batch_size {global_batch_size} must be a positive multiple of shard_count {shard_count}")
    if not 0 <= int(seed) < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    if c.num_workers < 0:
        raise ValueError(f"data config: num_workers must be >= 0, got {c.num_workers}")
    if c.num_workers > 0:
        _absl_flags_parsed_workaround()
    source = build_source(c, scale, shard_index, shard_count)
    if c.source == "records":  # already this host's part
        shard = grain.sharding.NoSharding()
    else:
        if len(source) < shard_count:
            raise ValueError(f"{len(source)} training images cannot be split into {shard_count} shards")
        shard = grain.sharding.ShardOptions(shard_index=shard_index, shard_count=shard_count, drop_remainder=True)
    sampler = grain.samplers.IndexSampler(
        num_records=len(source), shard_options=shard, shuffle=True, num_epochs=None, seed=int(seed)
    )
    per_process = global_batch_size // shard_count
    ops = [
        PairCropAugment(scale=scale, gt_size=int(c.gt_size), use_hflip=bool(c.use_hflip), use_rot=bool(c.use_rot)),
        grain.transforms.Batch(batch_size=per_process, drop_remainder=True),
    ]
    # A small read-ahead (enough to keep the threads busy): each buffered record is a whole
    # decoded image (~8 MB for DIV2K), and grain's default of 500 would hold gigabytes.
    threads = max(int(c.read_threads), 1)
    read = grain.ReadOptions(num_threads=threads, prefetch_buffer_size=max(2 * threads, 4))
    return grain.DataLoader(
        data_source=source,
        sampler=sampler,
        operations=ops,
        worker_count=int(c.num_workers),
        worker_buffer_size=int(c.worker_buffer_size),
        shard_options=shard,
        read_options=read,
    )
