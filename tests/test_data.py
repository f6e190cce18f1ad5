"""grain pipeline: determinism, shards, aligned crops and augmentations, resume, bad files, embedded set."""

import itertools
import json

import numpy as np
import pytest

from lsm_jax.data import pipeline as data
from lsm_jax.data.image_io import ImageFileError, write_png
from lsm_jax.data.imresize import imresize

SCALE = 2


def _cfg(**kw):
    c = data.default_data_config()
    c.gt_size = 16
    c.update(kw)
    return c


def _take(loader, n, state=None):
    it = iter(loader)
    if state is not None:
        it.set_state(state)
    out = [next(it) for _ in range(n)]
    return out, it


def _same(a, b):
    return all(np.array_equal(x["lq"], y["lq"]) and np.array_equal(x["gt"], y["gt"]) for x, y in zip(a, b))


@pytest.fixture(scope="module")
def paired_dir(tmp_path_factory):
    """8 HR images (random content, channel 0 = image id * 20) and LR made by nearest replication.

    HR = repeat(LR, 2): the only exact relation of a pair is lq == gt[::2, ::2], for every aligned
    crop and every flip/transpose, so any misalignment or unpaired augmentation breaks it.
    """
    root = tmp_path_factory.mktemp("paired")
    rng = np.random.default_rng(0)
    for i in range(8):
        lr = rng.integers(0, 256, (12 + i % 3, 14, 3), dtype=np.uint8)
        lr[..., 0] = 20 * i
        write_png(root / "HR" / f"{i:04d}.png", lr.repeat(SCALE, 0).repeat(SCALE, 1))
        write_png(root / "LR" / "X2" / f"{i:04d}x2.png", lr)
    return root


def _paired_cfg(root, **kw):
    return _cfg(source="paired", hr_dir=str(root / "HR"), lr_dir=str(root / "LR" / "X{scale}"), **kw)


def test_batches_shapes_and_range(paired_dir):
    loader = data.make_train_loader(_paired_cfg(paired_dir), scale=SCALE, global_batch_size=6, seed=0, shard_count=2)
    (b,), _ = _take(loader, 1)
    assert set(b) == {"lq", "gt"}
    assert b["lq"].shape == (3, 8, 8, 3) and b["gt"].shape == (3, 16, 16, 3)
    assert b["lq"].dtype == b["gt"].dtype == np.float32
    assert 0.0 <= b["gt"].min() and b["gt"].max() <= 1.0


def test_same_seed_same_batches_other_seed_differs(paired_dir):
    cfg = _paired_cfg(paired_dir)
    a, _ = _take(data.make_train_loader(cfg, scale=SCALE, global_batch_size=4, seed=7), 3)
    b, _ = _take(data.make_train_loader(cfg, scale=SCALE, global_batch_size=4, seed=7), 3)
    c, _ = _take(data.make_train_loader(cfg, scale=SCALE, global_batch_size=4, seed=8), 3)
    assert _same(a, b)
    assert not _same(a, c)


@pytest.mark.parametrize("augment", [True, False])
def test_paired_crops_and_augmentations_stay_aligned(paired_dir, augment):
    """Each (lq, gt) is found in its LR/HR files under one flip/transpose, at aligned positions."""
    from lsm_jax.data.image_io import read_rgb8

    cfg = _paired_cfg(paired_dir, use_hflip=augment, use_rot=augment)
    batches, _ = _take(data.make_train_loader(cfg, scale=SCALE, global_batch_size=8, seed=1), 4)
    drawn = []
    for b in batches:
        np.testing.assert_array_equal(b["lq"], b["gt"][:, ::SCALE, ::SCALE])
        for lq, gt in zip(b["lq"], b["gt"]):
            i = int(round(gt[0, 0, 0] * 255)) // 20
            lr = read_rgb8(paired_dir / "LR" / "X2" / f"{i:04d}x2.png")
            hr = read_rgb8(paired_dir / "HR" / f"{i:04d}.png")
            lq8, gt8 = np.round(lq * 255).astype(np.uint8), np.round(gt * 255).astype(np.uint8)
            hits = [(k, t, l) for k in itertools.product((0, 1), repeat=3)
                    for t in range(lr.shape[0] - 7) for l in range(lr.shape[1] - 7)
                    if np.array_equal(lr[t : t + 8, l : l + 8], _undo(lq8, *k))]
            assert len(hits) == 1
            k, t, l = hits[0]
            np.testing.assert_array_equal(hr[2 * t : 2 * t + 16, 2 * l : 2 * l + 16], _undo(gt8, *k))
            drawn.append(k)
    if augment:
        assert len(set(drawn)) >= 5  # flips and transposes are really drawn (32 samples, 8 outcomes)
    else:
        assert set(drawn) == {(0, 0, 0)}


def test_shards_are_disjoint(paired_dir):
    cfg = _paired_cfg(paired_dir)
    seen = []
    for k in range(2):
        # one epoch of a shard: 4 records = 2 batches of 2
        batches, _ = _take(data.make_train_loader(cfg, scale=SCALE, global_batch_size=4, seed=5,
                                                  shard_index=k, shard_count=2), 2)
        ids = {int(round(g[0, 0, 0] * 255)) // 20 for b in batches for g in b["gt"]}
        assert len(ids) == 4
        seen.append(ids)
    assert seen[0].isdisjoint(seen[1]) and seen[0] | seen[1] == set(range(8))


def test_resume_exactly_after_save_and_restore(paired_dir):
    cfg = _paired_cfg(paired_dir)
    make = lambda: data.make_train_loader(cfg, scale=SCALE, global_batch_size=3, seed=11)  # noqa: E731
    _, it = _take(make(), 5)  # crosses an epoch boundary (8 records)
    state = it.get_state()
    json.loads(state.decode())  # plain JSON, storable by orbax
    expected = [next(it) for _ in range(3)]
    resumed, _ = _take(make(), 3, state=state)
    assert _same(expected, resumed)
    fresh, _ = _take(make(), 3)
    assert not _same(expected, fresh)


def test_worker_processes_deterministic_and_resumable(paired_dir):
    cfg = _paired_cfg(paired_dir, num_workers=2)
    make = lambda: data.make_train_loader(cfg, scale=SCALE, global_batch_size=4, seed=2)  # noqa: E731
    first, it = _take(make(), 3)
    state = it.get_state()
    expected = [next(it) for _ in range(2)]
    del it
    resumed, it2 = _take(make(), 2, state=state)
    assert _same(expected, resumed)
    del it2
    again, it3 = _take(make(), 3)
    assert _same(first, again)
    for b in again:
        np.testing.assert_array_equal(b["lq"], b["gt"][:, ::SCALE, ::SCALE])
    del it3


def test_on_the_fly_lr_is_imresize_of_the_hr_crop(tmp_path):
    rng = np.random.default_rng(4)
    for i in range(3):
        write_png(tmp_path / f"im{i}.png", rng.integers(0, 256, (30 + i, 27, 3), dtype=np.uint8))
    cfg = _cfg(source="hr_only", hr_dir=str(tmp_path), use_hflip=False, use_rot=False)
    (b,), _ = _take(data.make_train_loader(cfg, scale=SCALE, global_batch_size=3, seed=0), 1)
    gt8 = np.round(b["gt"] * 255).astype(np.uint8)
    want = np.asarray(imresize(gt8, 1 / SCALE)).astype(np.float32) / 255
    np.testing.assert_array_equal(b["lq"], want)
    # With the augmentations, undoing the sample's flips/transpose gives back an exact (crop, imresize) pair.
    cfg.use_hflip = cfg.use_rot = True
    batches, _ = _take(data.make_train_loader(cfg, scale=SCALE, global_batch_size=3, seed=0), 4)
    for b in batches:
        for lq, gt in zip(b["lq"], b["gt"]):
            gt8 = np.round(gt * 255).astype(np.uint8)
            hits = [k for k in itertools.product((0, 1), repeat=3)
                    if np.array_equal(_undo(lq, *k), np.asarray(imresize(_undo(gt8, *k), 1 / SCALE)) / np.float32(255))]
            assert hits, "no flip/transpose combination explains the pair"


def _undo(a, hflip, vflip, transpose):
    """Inverse of hflip -> vflip -> transpose."""
    if transpose:
        a = a.transpose(1, 0, 2)
    if vflip:
        a = a[::-1]
    if hflip:
        a = a[:, ::-1]
    return np.ascontiguousarray(a)


def test_corrupt_file_is_named(paired_dir, tmp_path):
    import shutil

    root = tmp_path / "bad"
    shutil.copytree(paired_dir, root)
    (root / "HR" / "0003.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    with pytest.raises(ImageFileError, match=r"0003\.png: cannot decode"):
        data.make_train_loader(_paired_cfg(root, check_files=True), scale=SCALE, global_batch_size=2, seed=0)
    loader = data.make_train_loader(_paired_cfg(root), scale=SCALE, global_batch_size=8, seed=0)
    with pytest.raises(Exception, match=r"0003\.png: cannot decode"):
        _take(loader, 2)


def test_check_files_reports_mismatched_and_missing_pairs(paired_dir, tmp_path):
    import shutil

    root = tmp_path / "mis"
    shutil.copytree(paired_dir, root)
    write_png(root / "LR" / "X2" / "0002x2.png", np.zeros((5, 5, 3), np.uint8))
    with pytest.raises(ImageFileError, match=r"0002x2\.png: LR is 5x5 but HR .*0002\.png is 28x28"):
        data.make_train_loader(_paired_cfg(root, check_files=True), scale=SCALE, global_batch_size=2, seed=0)
    (root / "LR" / "X2" / "0005x2.png").unlink()
    with pytest.raises(ImageFileError, match=r"1 LR file\(s\) missing: 0005x2\.\* \(for 0005\.png\)"):
        data.make_train_loader(_paired_cfg(root), scale=SCALE, global_batch_size=2, seed=0)


def test_dataset_enlarge_ratio(paired_dir):
    cfg = _paired_cfg(paired_dir, dataset_enlarge_ratio=3)
    src = data.build_source(cfg, SCALE)
    assert len(src) == 24 and "ratio=3" in repr(src)
    # one enlarged epoch (24 records) visits every image exactly 3 times
    batches, _ = _take(data.make_train_loader(cfg, scale=SCALE, global_batch_size=8, seed=0), 3)
    ids = [int(round(g[0, 0, 0] * 255)) // 20 for b in batches for g in b["gt"]]
    assert sorted(ids) == sorted(list(range(8)) * 3)


def test_embedded_images_and_default_loader():
    imgs = data.embedded_images()
    assert [n for n, _ in imgs] == list(data.EMBEDDED_NAMES) and len(imgs) >= 8
    for n, im in imgs:
        assert im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3 and min(im.shape[:2]) >= 256, n
    cfg = data.default_data_config()
    assert cfg.source == "embedded"
    cfg.gt_size = 24
    (b,), _ = _take(data.make_train_loader(cfg, scale=3, global_batch_size=4, seed=0), 1)
    assert b["lq"].shape == (4, 8, 8, 3) and b["gt"].shape == (4, 24, 24, 3)


def test_config_errors_are_clear(paired_dir):
    with pytest.raises(ValueError, match="gt_size 16 must be a positive multiple of the scale 3"):
        data.make_train_loader(_cfg(), scale=3, global_batch_size=4, seed=0)
    with pytest.raises(ValueError, match="unknown field"):
        c = data.default_data_config().to_dict()
        c["gt_sizes"] = 1
        import ml_collections

        data.make_train_loader(ml_collections.ConfigDict(c), scale=2, global_batch_size=4, seed=0)
    with pytest.raises(ValueError, match="multiple of shard_count"):
        data.make_train_loader(_cfg(), scale=2, global_batch_size=5, seed=0, shard_count=2)
    with pytest.raises(ValueError, match="needs hr_dir and lr_dir"):
        data.make_train_loader(_cfg(source="paired"), scale=2, global_batch_size=4, seed=0)
    with pytest.raises(ValueError, match="source must be one of"):
        data.make_train_loader(_cfg(source="lmdb"), scale=2, global_batch_size=4, seed=0)
