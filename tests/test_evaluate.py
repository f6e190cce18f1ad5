"""Evaluation CLI and library: Set5 bicubic end to end, folder layouts, clear errors, make_lr."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from lsm_jax import evaluate
from lsm_jax.evaluation import scoring
from lsm_jax import make_lr
from lsm_jax.data.image_io import read_rgb8, write_png

SET5 = Path(__file__).parents[1] / "data" / "Set5"


def _small_benchmark(tmp_path, names=("bird", "butterfly"), scale=4, manga=False):
    """A copy of part of Set5 (HR + LR_bicubic/X{scale}) in tmp_path/name."""
    root = tmp_path / ("Manga109" if manga else "Mini")
    (root / "HR").mkdir(parents=True)
    (root / "LR_bicubic" / f"X{scale}").mkdir(parents=True)
    for n in names:
        shutil.copy(SET5 / "HR" / f"{n}.png", root / "HR" / f"{n}.png")
        lr_name = f"{n}_LRBI_x{scale}.png" if manga else f"{n}x{scale}.png"
        shutil.copy(SET5 / "LR_bicubic" / f"X{scale}" / f"{n}x{scale}.png", root / "LR_bicubic" / f"X{scale}" / lr_name)
    return root


def test_cli_bicubic_set5_json(tmp_path, capsys):
    out = tmp_path / "res" / "set5.json"
    evaluate.run(["--bicubic", "-i", str(SET5), "--scale", "4", "-o", str(out), "-q"])
    text = capsys.readouterr().out
    assert "| baby" in text and "Set5" in text and "Bicubic" in text
    res = json.loads(out.read_text())
    d = res["datasets"][0]
    assert d["dataset"] == "Set5" and len(d["images"]) == 5 and not d["lr_on_the_fly"]
    assert abs(d["psnr"] - 28.42) <= 0.03 and abs(d["ssim"] - 0.8104) <= 0.001
    assert d["psnr"] == pytest.approx(np.mean([i["psnr"] for i in d["images"]]))


def test_hr_only_folder_makes_lr_on_the_fly(tmp_path):
    """HR-only gives the same scores as the MATLAB LR files (imresize reproduces them)."""
    paired = _small_benchmark(tmp_path)
    hr_only = tmp_path / "HrOnly" / "HR"
    shutil.copytree(paired / "HR", hr_only)
    up = scoring.bicubic_upscaler(4)
    a = scoring.evaluate_folder(up, paired, 4, progress=False)
    b = scoring.evaluate_folder(up, hr_only.parent, 4, progress=False)
    assert b["lr_on_the_fly"] and not a["lr_on_the_fly"]
    assert [i["name"] for i in a["images"]] == [i["name"] for i in b["images"]] == ["bird", "butterfly"]
    for x, y in zip(a["images"], b["images"]):
        assert x["psnr"] == pytest.approx(y["psnr"], abs=1e-9)
        assert x["ssim"] == pytest.approx(y["ssim"], abs=1e-12)


def _numpy_y_psnr(sr8: np.ndarray, hr8: np.ndarray, border: int) -> float:
    """The protocol written out independently: Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 on
    uint8 RGB (not rounded), `border` pixels trimmed on each side, PSNR with peak 255, in float64."""
    def luma(img):
        return 16.0 + img.astype(np.float64) @ np.array([65.481, 128.553, 24.966]) / 255.0
    diff = (luma(sr8) - luma(hr8))[border:-border, border:-border]
    return float(10.0 * np.log10(255.0 ** 2 / np.mean(diff ** 2)))


def test_manga109_naming_and_hr_crop(tmp_path):
    """`{name}_LRBI_x{s}` is found; an HR that is not a multiple of s is cropped to LR·s (its top
    342 rows), and the score is the PSNR on Y of what the model returned against that crop."""
    root = _small_benchmark(tmp_path, names=("woman",), scale=3, manga=True)  # woman 228x344 (W x H): 344 % 3 = 2
    returned = []
    bicubic = scoring.bicubic_upscaler(3)
    r = scoring.evaluate_folder(lambda lr: returned.append(bicubic(lr)) or returned[-1], root, 3, progress=False)
    assert r["dataset"] == "Manga109" and len(r["images"]) == 1
    hr = read_rgb8(SET5 / "HR" / "woman.png")
    assert hr.shape == (344, 228, 3) and returned[0].shape == (342, 228, 3)
    sr8 = np.rint(np.clip(returned[0].astype(np.float64), 0, 1) * 255).astype(np.uint8)
    want = _numpy_y_psnr(sr8, hr[:342, :228], border=3)
    assert r["psnr"] == pytest.approx(want, abs=1e-9) and r["images"][0]["psnr"] == r["psnr"]
    assert want == pytest.approx(28.5663, abs=1e-4)   # bicubic x3 on this image (a regression pin)


def test_missing_and_mismatched_files_are_named(tmp_path):
    root = _small_benchmark(tmp_path)
    (root / "LR_bicubic" / "X4" / "birdx4.png").unlink()
    with pytest.raises(SystemExit, match=r"bird\.png: no LR"):
        evaluate.run(["--bicubic", "-i", str(root), "--scale", "4", "-q"])
    write_png(root / "LR_bicubic" / "X4" / "birdx4.png", np.zeros((70, 72, 3), np.uint8))  # bird HR 288 -> 72
    with pytest.raises(SystemExit, match=r"birdx4\.png: LR 70x72 does not match HR bird\.png 288x288"):
        evaluate.run(["--bicubic", "-i", str(root), "--scale", "4", "-q"])
    with pytest.raises(SystemExit, match=r"LR_bicubic: no X2 folder \(found: X4\)"):
        evaluate.run(["--bicubic", "-i", str(root), "--scale", "2", "-q"])
    with pytest.raises(SystemExit, match="nowhere.*not a directory"):
        evaluate.run(["--bicubic", "-i", str(tmp_path / "nowhere"), "--scale", "2"])
    with pytest.raises(SystemExit, match="nowhere.*not a directory"):   # the spellings from before -i/-o/-q
        evaluate.run(["--bicubic", "--data", str(tmp_path / "nowhere"), "--scale", "2", "--no-progress"])


def test_corrupt_image_is_named(tmp_path):
    root = _small_benchmark(tmp_path)
    (root / "HR" / "butterfly.png").write_bytes(b"not a png at all")
    with pytest.raises(SystemExit, match=r"butterfly\.png: cannot decode"):
        evaluate.run(["--bicubic", "-i", str(root), "--scale", "4", "-q"])


@pytest.mark.parametrize("model,message", [
    (lambda lr: lr, r"butterfly: the model returned \(64, 64, 3\).*expected \(256, 256, 3\)"),
    (lambda lr: np.full((256, 256, 3), np.nan, np.float32), r"butterfly: the model returned NaN or inf"),
])
def test_wrong_model_output_is_named(tmp_path, model, message):
    root = _small_benchmark(tmp_path, names=("butterfly",))
    with pytest.raises(ValueError, match=message):
        scoring.evaluate_folder(model, root, 4, progress=False)


def test_summary_uses_paper_column_order():
    def res(name):
        return {"dataset": name, "scale": 2, "lr_on_the_fly": False, "psnr": 30.0, "ssim": 0.9,
                "images": [{"name": "a", "psnr": 30.0, "ssim": 0.9}]}

    text = scoring.format_results([res("Urban100"), res("Mine"), res("Set5"), res("BSD100")], "M")
    header = [ln for ln in text.splitlines() if ln.startswith("| Method")][0]
    cols = [c.strip() for c in header.strip("|").split("|")]
    assert cols == ["Method", "Scale", "Set5", "BSD100", "Urban100", "Mine"]


def test_real_checkpoint(tmp_path, tmp_path_factory, capsys, monkeypatch):
    """--checkpoint with the converted tiny network; a scale mismatch and a bad path are clear errors; a
    state_dict straight to --checkpoint, the scale read from it, the images saved."""
    from fixture_checkpoint import tiny_checkpoint, write_reference_files

    ckpt = tiny_checkpoint(tmp_path_factory)
    hr = tmp_path / "Tiny" / "HR"
    hr.mkdir(parents=True)
    full = read_rgb8(SET5 / "HR" / "butterfly.png")
    write_png(hr / "a.png", full[:24, :30])
    write_png(hr / "b.png", full[40:64, 50:80])   # same size: one compilation
    with pytest.raises(SystemExit, match=r"is a x2 model but --scale is 4"):
        evaluate.run(["--checkpoint", str(ckpt), "-i", str(tmp_path / "Tiny"), "--scale", "4"])
    with pytest.raises(SystemExit, match=r"absent: checkpoint not found"):
        evaluate.run(["--checkpoint", str(tmp_path / "absent"), "-i", str(tmp_path / "Tiny"),
                       "--scale", "2"])
    with pytest.raises(SystemExit, match=r"--bicubic needs --scale"):
        evaluate.run(["--bicubic", "-i", str(tmp_path / "Tiny")])
    res = evaluate.run(["--checkpoint", str(ckpt), "-i", str(tmp_path / "Tiny"), "--scale", "2",
                         "-q", "-o", str(tmp_path / "r.json"), "--ensemble"])
    assert [im["name"] for im in res[0]["images"]] == ["a", "b"]
    assert all(np.isfinite(im["psnr"]) and 0 < im["ssim"] <= 1 for im in res[0]["images"])
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["datasets"][0]["dataset"] == "Tiny" and saved["datasets"] == saved["methods"]["ckpt"]
    ens = saved["methods"]["ckpt+"][0]
    assert ens["psnr"] != res[0]["psnr"] and np.isfinite(ens["psnr"])   # its own row, its own numbers
    out = capsys.readouterr().out
    assert "| ckpt " in out and "| ckpt+ | x2 |" in out
    weights, _ = write_reference_files(tmp_path / "ref")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))      # the converted model's cache: this test's
    again = evaluate.run(["--checkpoint", str(weights), "-i", str(tmp_path / "Tiny"), "-q",
                          "--save-images", str(tmp_path / "sr")])          # no --scale: x2 from the weights
    assert [im["psnr"] for im in again[0]["images"]] == [im["psnr"] for im in res[0]["images"]]
    saved_png = sorted(p.name for p in (tmp_path / "sr" / "Tiny").iterdir())
    assert saved_png == ["a_x2.png", "b_x2.png"]
    sr = read_rgb8(tmp_path / "sr" / "Tiny" / "a_x2.png")
    assert sr.shape == (24, 30, 3)
    from lsm_jax.evaluation.metrics import psnr
    assert psnr(sr, full[:24, :30], 2) == pytest.approx(again[0]["images"][0]["psnr"], abs=1e-9)   # as scored
    assert "| weights " in capsys.readouterr().out                       # the method row: the file's stem


def test_make_lr_cli_reproduces_set5_and_reports_bad_files(tmp_path, capsys):
    hr = tmp_path / "HR"
    hr.mkdir()
    for n in ("bird", "woman"):
        shutil.copy(SET5 / "HR" / f"{n}.png", hr / f"{n}.png")
    make_lr.main(["-i", str(hr), "--scale", "3", "-o", str(tmp_path / "X3"), "-q"])
    for n in ("bird", "woman"):
        got = read_rgb8(tmp_path / "X3" / f"{n}x3.png")
        want = read_rgb8(SET5 / "LR_bicubic" / "X3" / f"{n}x3.png")
        assert np.array_equal(got, want)
    (hr / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(SystemExit, match="1 file"):
        make_lr.main(["-i", str(hr), "--scale", "2", "-o", str(tmp_path / "X2"), "-q"])
    assert "broken.png" in capsys.readouterr().err
    assert (tmp_path / "X2" / "birdx2.png").exists()  # the good files were still written
    with pytest.raises(SystemExit, match="--scale must be"):
        make_lr.main(["-i", str(hr), "--scale", "1", "-o", str(tmp_path / "X1")])
    with pytest.raises(SystemExit, match="not a directory"):   # the spellings from before -i/-o still work
        make_lr.main(["--hr", str(tmp_path / "none"), "--scale", "2", "--out", str(tmp_path / "X1")])
