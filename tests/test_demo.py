"""`lsm-demo` (`python -m lsm_jax.demo`): the config it trains, its options and what -q leaves (the training
itself is `make demo`'s job)."""

from __future__ import annotations

import pytest

from lsm_jax import demo
from lsm_jax.evaluation.benchmarks import bundled_set5
from lsm_jax.training import loop
from lsm_jax.training.config_loader import load_config


class _Stop(Exception):
    """Raised by the stand-in training loop once it has seen the config."""


@pytest.mark.parametrize("argv, steps, batch", [
    (["--steps", "7"], 7, None),
    (["--steps", "7", "--config.batch_size=4"], 7, 4),                 # the override must not drop --steps
    (["--config.batch_size=4", "--steps=7", "--config.total_steps=9"], 7, 4),   # --steps wins
    (["--config.total_steps=9"], 9, None),
    (["--config.batch_size", "4"], None, 4),                           # `--config.KEY VALUE` too
])
def test_steps_and_config_overrides_both_apply(monkeypatch, tmp_path, argv, steps, batch):
    seen = {}

    def fake_train(config, workdir):
        seen["config"] = config
        raise _Stop

    monkeypatch.setattr(loop, "train_and_evaluate", fake_train)
    monkeypatch.setattr(demo.logging, "basicConfig", lambda **kw: None)   # keep pytest's log handlers
    with pytest.raises(_Stop):
        demo.main(["-o", str(tmp_path / "out"), *argv])
    config, tiny = seen["config"], load_config("lsm_light:tiny")
    assert config.total_steps == (steps or tiny.total_steps)
    assert config.batch_size == (batch or tiny.batch_size)
    assert tuple(config.eval.dirs) == (str(bundled_set5()),)   # validated on the Set5 it scores on


def test_bad_override_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(demo.logging, "basicConfig", lambda **kw: None)
    assert demo.main(["-o", str(tmp_path / "out"), "--steps", "3", "--config.optim.lrr=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lsm-demo: error: --config.optim.lrr=1: no such config field") and "\n" not in err


@pytest.mark.parametrize("args, expected", [
    (["--set", "batch_size=4"], "--set batch_size=4: write config overrides as --config.KEY=VALUE "
                                "(--config.batch_size=4)"),
    (["--bogus"], "unrecognized arguments: --bogus (config overrides are --config.KEY=VALUE; see lsm-demo --help)"),
])
def test_set_and_stray_arguments_are_one_line_errors(args, expected, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(loop, "train_and_evaluate", lambda *a: pytest.fail("must not train"))
    assert demo.main(["-o", str(tmp_path / "out"), *args]) == 2
    assert capsys.readouterr().err == f"lsm-demo: error: {expected}\n"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, stage_lines", [
    (["--output", "{out}", "--target-db", "0.5"], True),
    (["--out", "{out}", "--target_db=0.5"], True),    # the spellings before the one vocabulary are still read
    (["-o", "{out}", "-q"], False),
])
def test_output_target_and_quiet(monkeypatch, tmp_path, capsys, argv, stage_lines):
    seen = {}

    def fake_train(config, workdir):
        seen.update(workdir=workdir, bar=config.progress_bar)
        raise _Stop

    monkeypatch.setattr(loop, "train_and_evaluate", fake_train)
    monkeypatch.setattr(demo.logging, "basicConfig", lambda **kw: seen.update(level=kw["level"]))
    out = tmp_path / "out"
    with pytest.raises(_Stop):
        demo.main([a.format(out=out) for a in argv])
    assert seen["workdir"] == out / "run"
    printed = capsys.readouterr().out
    assert printed.startswith("[demo] training the tiny LSM-light") == stage_lines
    assert seen["bar"] == stage_lines and seen["level"] == (demo.logging.INFO if stage_lines else demo.logging.WARNING)
    if "--target-db" in argv or "--target_db=0.5" in argv:
        assert demo._arguments([a.format(out=out) for a in argv])[0].target_db == 0.5
