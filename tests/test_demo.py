"""`python -m lsm_jax.demo`: the config it trains (the training itself is `make demo`'s job)."""

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
        demo.main(["--out", str(tmp_path / "out"), *argv])
    config, tiny = seen["config"], load_config("lsm_light:tiny")
    assert config.total_steps == (steps or tiny.total_steps)
    assert config.batch_size == (batch or tiny.batch_size)
    assert tuple(config.eval.dirs) == (str(bundled_set5()),)   # validated on the Set5 it scores on


def test_bad_override_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(demo.logging, "basicConfig", lambda **kw: None)
    assert demo.main(["--out", str(tmp_path / "out"), "--steps", "3", "--config.optim.lrr=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "optim.lrr" in err and "\n" not in err
