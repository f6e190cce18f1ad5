"""The committed study folders of experiments/: harvesting a workdir's runs, rebuilding the bf16 study's
tables and loss curves from the committed files alone, and noticing a table that disagrees with its runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

STUDIES = Path(__file__).resolve().parents[1] / "experiments" / "results" / "studies"


def _bf16_workdir(path: Path, seeds: list[int], ratio: float = 1.01) -> Path:
    """A finished bf16 study in miniature: 2 rows × `seeds`, each with a result and a loss history in which
    bfloat16's loss is float32's × `ratio`."""
    (path / "runs").mkdir(parents=True)
    (path / "study.json").write_text(json.dumps(dict(
        config="studies/bf16_quality", sweep=["model.dtype=float32,bfloat16"], zip=[], seeds=3, set=[], steps=200,
        data=["data/Set5", "data/Gray6"], baseline="dtype=float32")))
    for dtype, factor in (("float32", 1.0), ("bfloat16", ratio)):
        for seed in seeds:
            run = path / "runs" / f"dtype={dtype}" / f"seed{seed}"
            run.mkdir(parents=True)
            history = [dict(step=s, **{"train/loss": factor * (0.1 + 0.01 * seed) / s, "train/grad_norm": 1.0})
                       for s in (50, 100, 150, 200)]
            history.append({"step": 200, "val/Set5/psnr": 30.0})   # a validation record: not a loss
            (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
            (run / "result.json").write_text(json.dumps(dict(
                label=f"dtype={dtype}", overrides={"model.dtype": dtype}, seed=seed, status="done", step=200,
                metrics={"Set5/psnr": 30.0 + seed + (0.05 if dtype == "bfloat16" else 0.0), "Set5/ssim": 0.9,
                         "Gray6/psnr": 33.0 + seed, "Gray6/ssim": 0.95},
                final_loss=history[-2]["train/loss"])))
    return path


def test_bf16_study_rebuilds_and_checks_its_loss_curves(tmp_path):
    from experiments import bf16_quality, study_folder
    out = tmp_path / "out"
    assert bf16_quality.harvest(_bf16_workdir(tmp_path / "w", [0, 1, 2]), out) == [
        "dtype=bfloat16/seed0", "dtype=bfloat16/seed1", "dtype=bfloat16/seed2",
        "dtype=float32/seed0", "dtype=float32/seed1", "dtype=float32/seed2"]
    study_folder.write_report(out)
    bf16_quality.rebuild(out)
    assert bf16_quality.check(out) == []
    curves = study_folder.unstamped(out / "loss_curves.csv")
    assert [int(r["step"]) for r in curves] == [50, 100, 150, 200]
    last = curves[-1]
    assert float(last["float32_mean"]) == pytest.approx(0.11 / 200, rel=1e-5)
    assert float(last["bfloat16_delta_rel_mean"]) == pytest.approx(0.01, rel=1e-4)
    assert int(last["bfloat16_delta_pairs"]) == 3
    report = (out / "report.md").read_text()
    assert "+0.05" in report   # the paired Set5 Δ of bfloat16 against the float32 baseline
    assert (out / "loss.png").stat().st_size > 0
    history = out / "runs" / "dtype=bfloat16" / "seed1" / "history.json"
    rows = json.loads(history.read_text())
    rows[-1]["loss"] *= 2
    history.write_text(json.dumps(rows))
    assert bf16_quality.check(out) == [f"{out / 'loss_curves.csv'}: differs from the runs' history.json files"]


def test_harvest_is_whole_and_skips_runs_already_committed(tmp_path):
    from experiments import bf16_quality
    out = tmp_path / "out"
    assert len(bf16_quality.harvest(_bf16_workdir(tmp_path / "a", [0]), out)) == 2
    assert bf16_quality.harvest(_bf16_workdir(tmp_path / "b", [0, 1]), out) == [
        "dtype=bfloat16/seed1", "dtype=float32/seed1"]
    assert not list(out.rglob("*.tmp"))
    spec = json.loads((tmp_path / "b" / "study.json").read_text())
    (tmp_path / "b" / "study.json").write_text(json.dumps({**spec, "steps": 400}))
    with pytest.raises(ValueError, match="another study"):
        bf16_quality.harvest(tmp_path / "b", out)


def test_study_folder_command_says_when_nothing_was_harvested(tmp_path, capsys):
    from experiments import bf16_quality
    assert bf16_quality.main(["-o", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("experiments.bf16_quality: error:") and "study.json" in err and "\n" not in err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "study.json").write_text("{")
    assert bf16_quality.main(["--workdir", str(broken), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"experiments.bf16_quality: error: {broken / 'study.json'}: not valid JSON")
    assert "\n" not in err


def test_committed_bf16_study_is_rebuilt_from_its_runs():
    from experiments import bf16_quality
    assert bf16_quality.check(STUDIES / "bf16_quality") == []
