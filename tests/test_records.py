"""make_dataset records and the 'records' source: round trip, LR alignment, bad files, restart, resume, hosts."""

import json

import numpy as np
import pytest

from lsm_jax.data import pipeline as data
from lsm_jax.data.image_io import read_rgb8, write_png
from lsm_jax.data.record_writer import make_dataset
from lsm_jax.make_dataset import main
from lsm_jax.data.record_format import subimage_hash
from lsm_jax.data.records import RecordsFolder, RecordsSource
from lsm_jax.data.subimages import axis_windows, unit_of, usable_size, window_reachable

SCALES = (2, 3)
CROP, STEP, GT = 24, 12, 12
# (H, W): 58 gives an edge-aligned last window (usable 57 -> starts 0, 12, 24, 30); 37 a lone short window.
SIZES = [(50, 58), (48, 60), (36, 46), (54, 64), (40, 62), (30, 38)]


@pytest.fixture(scope="module")
def src_dir(tmp_path_factory):
    """HR = nearest x2 of the x2 LR (so a correct pair has lq == gt[::2, ::2]); x3 LR random (offsets checked)."""
    root = tmp_path_factory.mktemp("src")
    rng = np.random.default_rng(0)
    for i, (h, w) in enumerate(SIZES):
        lr2 = rng.integers(0, 256, (h // 2, w // 2, 3), dtype=np.uint8)
        write_png(root / "HR" / f"{i:04d}.png", lr2.repeat(2, 0).repeat(2, 1))
        write_png(root / "LR" / "X2" / f"{i:04d}x2.png", lr2)
        write_png(root / "LR" / "X3" / f"{i:04d}x3.png", rng.integers(0, 256, (h // 3, w // 3, 3), dtype=np.uint8))
    return root


def _make(src, out, **kw):
    kw = {"scales": SCALES, "lr_dir": str(src / "LR" / "X{scale}"), "crop": CROP, "step": STEP, "jobs": 1,
          "progress": False, **kw}
    return make_dataset(src / "HR", out, **kw)


@pytest.fixture(scope="module")
def rec_dir(src_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("rec") / "rec"
    _make(src_dir, out, shards=2)
    return out


def test_round_trip_positions_lr_alignment_and_index(src_dir, rec_dir):
    index = json.loads((rec_dir / "index.json").read_text())
    assert index["bad"] == [] and index["scales"] == list(SCALES) and index["num_images"] == len(SIZES)
    folders = {s: RecordsFolder(rec_dir, s, GT) for s in SCALES}
    j = 0
    for i, im in enumerate(index["images"]):
        assert im["source"] == f"{i:04d}.png"
        hr = read_rgb8(src_dir / "HR" / im["source"])
        lrs = {s: read_rgb8(src_dir / "LR" / f"X{s}" / f"{i:04d}x{s}.png") for s in SCALES}
        hu, wu = (usable_size(n, SCALES) for n in hr.shape[:2])
        ys, sh = axis_windows(hu, CROP, STEP, unit_of(SCALES))
        xs, sw = axis_windows(wu, CROP, STEP, unit_of(SCALES))
        assert [(y, x) for y, x, _ in im["subimages"]] == [(y, x) for y in ys for x in xs]
        assert max(ys) + sh > hu - unit_of(SCALES) and max(xs) + sw > wu - unit_of(SCALES)  # borders kept
        for y, x, digest in im["subimages"]:
            want_hr = hr[y : y + sh, x : x + sw]
            want_lr = [lrs[s][y // s : (y + sh) // s, x // s : (x + sw) // s] for s in SCALES]
            assert digest == subimage_hash([want_hr] + want_lr)
            for s, want in zip(SCALES, want_lr):
                got = folders[s].read(j)
                assert got["name"].endswith(f"{im['source']}@{y},{x}")
                np.testing.assert_array_equal(got["hr"], want_hr)
                np.testing.assert_array_equal(got["lr"], want)  # HR offset = LR offset x scale
            j += 1
    assert j == index["num_subimages"] == len(folders[2])


def test_made_lr_is_the_whole_image_bicubic(src_dir, tmp_path):
    """Without --lr the LR is make_lr's whole-image bicubic, cut: the same records as from make_lr files."""
    from lsm_jax.data.lr_images import make_lr_image

    hr_dir = tmp_path / "HR"
    for name in ("0000.png", "0003.png"):
        hr = read_rgb8(src_dir / "HR" / name)
        write_png(hr_dir / name, hr)
        write_png(tmp_path / "LR" / "X2" / name.replace(".png", "x2.png"), make_lr_image(hr, 2))
    made = make_dataset(hr_dir, tmp_path / "a", scales=(2,), crop=CROP, step=STEP, jobs=1, progress=False)
    files = make_dataset(hr_dir, tmp_path / "b", scales=(2,), lr_dir=str(tmp_path / "LR" / "X{scale}"),
                         crop=CROP, step=STEP, jobs=1, progress=False)
    assert made["lr"] == "bicubic" and files["lr"] == "files"
    assert [im["subimages"] for im in made["images"]] == [im["subimages"] for im in files["images"]]


def test_bad_files_are_named_skipped_and_reported(src_dir, tmp_path, capsys):
    hr = tmp_path / "HR"
    for i in range(3):
        (hr / f"{i:04d}.png").parent.mkdir(parents=True, exist_ok=True)
        (hr / f"{i:04d}.png").write_bytes((src_dir / "HR" / f"{i:04d}.png").read_bytes())
        for s in SCALES:
            (tmp_path / f"X{s}").mkdir(exist_ok=True)
            (tmp_path / f"X{s}" / f"{i:04d}x{s}.png").write_bytes(
                (src_dir / "LR" / f"X{s}" / f"{i:04d}x{s}.png").read_bytes())
    (hr / "0001.png").write_bytes(b"not a png")
    (tmp_path / "X3" / "0002x3.png").write_bytes((src_dir / "LR" / "X3" / "0003x3.png").read_bytes())  # wrong size
    with pytest.raises(SystemExit, match="2 file"):
        main(["-i", str(hr), "--lr", str(tmp_path / "X{scale}"), "--scales", "2,3", "-o", str(tmp_path / "o"),
              "--crop", str(CROP), "--step", str(STEP), "--jobs", "1", "-q"])
    err = capsys.readouterr().err
    assert "0001.png" in err and "0002x3.png" in err and "x3 needs" in err
    index = json.loads((tmp_path / "o" / "index.json").read_text())
    assert [im["source"] for im in index["images"]] == ["0000.png"] and len(index["bad"]) == 2


def test_restart_keeps_finished_shards_and_redoes_the_rest(src_dir, rec_dir, tmp_path):
    out = tmp_path / "rec"

    def killed(k):
        if k == 0:
            (out / "shard-00001-of-00003.array_record.tmp").write_bytes(b"half a shard")  # killed mid-shard 1
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _make(src_dir, out, shards=3, on_shard=killed)
    kept = (out / "shard-00000-of-00003.array_record").stat().st_mtime_ns
    assert not (out / "index.json").exists()
    redone = []
    index = _make(src_dir, out, shards=3, on_shard=redone.append)
    assert redone == [1, 2] and (out / "shard-00000-of-00003.array_record").stat().st_mtime_ns == kept
    assert not list(out.glob("*.tmp"))
    want = json.loads((rec_dir / "index.json").read_text())
    assert [im["subimages"] for im in index["images"]] == [im["subimages"] for im in want["images"]]
    with pytest.raises(ValueError, match="other files or settings"):
        _make(src_dir, out, shards=3, step=6)


def _rec_cfg(*dirs, **kw):
    c = data.default_data_config()
    c.update(source="records", record_dirs=tuple(str(d) for d in dirs), **{"gt_size": GT, **kw})
    return c


def test_records_loader_aligned_deterministic_and_resumes(rec_dir):
    loader = data.make_train_loader(_rec_cfg(rec_dir), scale=2, global_batch_size=4, seed=3)
    ref, _ = (lambda it: ([next(it) for _ in range(4)], it))(iter(loader))
    for b in ref:
        assert b["gt"].shape == (4, GT, GT, 3) and b["lq"].shape == (4, GT // 2, GT // 2, 3)
        np.testing.assert_array_equal(b["lq"], b["gt"][:, ::2, ::2])  # pair aligned through crop and flips
    it = iter(data.make_train_loader(_rec_cfg(rec_dir), scale=2, global_batch_size=4, seed=3))
    next(it)
    state = it.get_state()
    it2 = iter(data.make_train_loader(_rec_cfg(rec_dir), scale=2, global_batch_size=4, seed=3))
    it2.set_state(state)
    for b in ref[1:]:
        got = next(it2)
        np.testing.assert_array_equal(got["gt"], b["gt"])
        np.testing.assert_array_equal(got["lq"], b["lq"])


def test_hosts_read_disjoint_subimages_and_weights_mix(rec_dir):
    n = len(RecordsFolder(rec_dir, 2, GT))
    names = [{RecordsSource([rec_dir], 2, GT, shard_index=h, shard_count=2)[k]["name"]
              for k in range(n // 2)} for h in (0, 1)]
    assert len(names[0]) == len(names[1]) == n // 2 and not names[0] & names[1]
    # Two folders (the same one twice), weights 3:1: the first block is 3x the second, every sub-image drawn.
    mix = RecordsSource([rec_dir, rec_dir], 2, GT, weights=(3, 1))
    assert mix.slots == [3 * n, n] and len(mix) == 4 * n
    drawn = [mix[k]["name"] for k in range(len(mix))]
    assert set(drawn[: 3 * n]) == set(drawn[3 * n :]) and len(set(drawn)) == n
    with pytest.raises(ValueError, match="record_weights"):
        RecordsSource([rec_dir], 2, GT, weights=(1, 1))


def test_every_patch_position_is_reachable_and_bad_settings_are_rejected(rec_dir):
    for n in (30, 47, 58, 100, 131):
        for crop, step in ((24, 12), (24, 6), (36, 24), (48, 30)):
            for gt in range(6, crop - step + 1, 6):
                assert window_reachable(n, crop, step, gt, unit=6), (n, crop, step, gt)
    assert not window_reachable(100, 24, 18, 12)  # crop - step = 6 < 12: e.g. [7, 19) lies in no sub-image
    with pytest.raises(ValueError, match=r"crop - step = 24 - 12 = 12"):
        data.make_train_loader(_rec_cfg(rec_dir, gt_size=18), scale=3, global_batch_size=2, seed=0)
    with pytest.raises(ValueError, match="not x4"):
        data.make_train_loader(_rec_cfg(rec_dir), scale=4, global_batch_size=2, seed=0)
    with pytest.raises(ValueError, match="multiple of 6"):
        make_dataset(rec_dir, rec_dir / "x", scales=SCALES, crop=24, step=8)
