"""The `train` command's own options, through the command: --help / -h (with a config's recipes), --print-config,
-q/--quiet, the refused `--set`, and the resolved config saved into the workdir at start; `--config` by packaged
name or by file path. `main(argv)` takes the arguments without the program name, as every command's `main`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lsm_jax import train as cli
from lsm_jax.training import loop

REPO = Path(__file__).resolve().parents[1]
LIGHT = "lsm_light"                                # the packaged config, by name
LIGHT_FILE = str(REPO / "configs/lsm_light.py")    # the same document, by its path


def _env():
    return dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))


@pytest.mark.parametrize("flag", ["--help", "-h"])
def test_help_prints_the_usage_and_exits_0(flag, capsys):
    assert cli.main([flag]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: lsm-train --config NAME[:RECIPE] --workdir DIR") and "--print-config" in out
    assert "  -q, --quiet " in out
    assert "lsm_light:tiny" in out and "configs/lsm_light.py:tiny" in out   # by name, and a file path works too


def test_help_through_python_m_and_the_console_script():
    done = subprocess.run([sys.executable, "-m", "lsm_jax.train", "--help"], capture_output=True, text=True,
                          env=_env(), cwd=REPO, timeout=120)
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr
    script = Path(sys.executable).parent / "lsm-train"
    if script.exists():
        done = subprocess.run([str(script), "-h"], capture_output=True, text=True, env=_env(), cwd=REPO, timeout=120)
        assert done.returncode == 0 and "usage:" in done.stdout, done.stderr


@pytest.mark.parametrize("spec", [LIGHT, LIGHT_FILE, "configs/lsm_light.py"])
def test_help_with_a_config_lists_its_recipes(spec, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # configs/lsm_light.py is not a file here: the packaged document is meant
    assert cli.main(["--config", spec, "--help"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if ln.startswith("Recipes of"))
    for recipe in ("x2_scratch", "x2_finetune", "x3_finetune", "x4_finetune", "tiny"):
        assert recipe in line
    assert f"--config {spec}:x2_scratch --print-config" in out  # how to see every field


def test_help_with_a_missing_config_says_so_in_one_line(capsys):
    assert cli.main(["--config", "configs/nosuch.py", "--help"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("lsm-train: error: --config: no config file or packaged config 'configs/nosuch.py' "
                           "(expected a .py file, or one of: lsm, lsm_light, lsm_s, studies/")
    assert last.endswith("e.g. lsm_light:tiny)")


def test_print_config_prints_the_resolved_config_and_does_not_train(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(loop, "train_and_evaluate", lambda *a: pytest.fail("--print-config must not train"))
    argv = [f"--config={LIGHT}:tiny", "--print-config", "--config.batch_size=4",
            "--config.model.rmin=0.5", "--workdir", str(tmp_path / "run")]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "batch_size: 4" in lines and "  rmin: 0.5" in lines and "recipe: tiny" in lines
    assert "  embed_dim: 32" in lines  # the recipe's value, not the default's
    assert not (tmp_path / "run").exists()
    # Without a workdir too; a bad override is still one line.
    assert cli.main(["--config", f"{LIGHT_FILE}:tiny", "--print-config", "--config.batch_size", "4"]) == 0
    assert "batch_size: 4" in capsys.readouterr().out.splitlines()   # a file path; `--config.KEY VALUE` too
    assert cli.main([f"--config={LIGHT}:tiny", "--print-config"]) == 0
    capsys.readouterr()
    assert cli.main([f"--config={LIGHT}:tiny", "--print-config", "--config.model.rmin=abc"]) == 2
    assert "--config.model.rmin=abc" in capsys.readouterr().err.splitlines()[0]


def test_the_resolved_config_is_saved_into_the_workdir_at_start(tmp_path, monkeypatch, capsys):
    def stop(*a, **k):  # stop the run right after phase 1 (devices, mesh, checks): nothing compiles
        raise ValueError("stopped by the test")

    monkeypatch.setattr(loop, "build", stop)
    workdir = tmp_path / "run"
    argv = ["--config", f"{LIGHT}:tiny", "--workdir", str(workdir), "--config.batch_size=16",
            "--config.model.depth=(1, 1)", "--config.optim.lr=0.002"]
    assert cli.main(argv) == 2 and "stopped by the test" in capsys.readouterr().err
    saved = json.loads((workdir / "train_config.json").read_text())
    assert saved["recipe"] == "tiny" and saved["batch_size"] == 16 and saved["optim"]["lr"] == 0.002
    assert saved["model"]["depth"] == [1, 1] and saved["model"]["embed_dim"] == 32
    assert sorted(p.name for p in workdir.iterdir()) == ["train_config.json"]  # no temporary file left


def test_quiet_logs_warnings_only_and_turns_the_progress_bar_off(tmp_path, monkeypatch, capsys):
    import logging
    seen = {}

    def stop(config, workdir):   # instead of training: what the loop would get
        seen["bar"] = config.progress_bar
        seen["level"] = logging.getLogger().level
        raise ValueError("stopped by the test")

    monkeypatch.setattr(loop, "train_and_evaluate", stop)
    for flag, bar, level in (("-q", False, logging.WARNING), ("--quiet", False, logging.WARNING),
                             (None, True, logging.INFO)):   # the last leaves the logging as the other tests find it
        argv = ["--config", f"{LIGHT}:tiny", "--workdir", str(tmp_path / "run"), *([flag] if flag else [])]
        assert cli.main(argv) == 2 and "stopped by the test" in capsys.readouterr().err
        assert (seen["bar"], seen["level"]) == (bar, level), flag


@pytest.mark.parametrize("args, expected", [
    (["--set", "model.rmin=0.5"], "--set model.rmin=0.5: write config overrides as --config.KEY=VALUE "
                                  "(--config.model.rmin=0.5)"),
    (["--set=batch_size=4"], "--set batch_size=4: write config overrides as --config.KEY=VALUE (--config.batch_size=4)"),
])
def test_the_old_set_spelling_is_refused_saying_how_to_write_it(args, expected, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(loop, "train_and_evaluate", lambda *a: pytest.fail("must not train"))
    assert cli.main(["--config", f"{LIGHT}:tiny", "--workdir", str(tmp_path / "run"), *args]) == 2
    assert capsys.readouterr().err.splitlines()[0] == f"lsm-train: error: {expected}"
