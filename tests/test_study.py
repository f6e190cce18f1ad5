"""The study lab: sweep grammar, a resumable 2 × 2 study whose report equals the runs' own
evaluation, eigenvalue extraction, LRU parameter groups / freezing, and the knobs' defaults."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from lsm_jax.model.lru import LRUCore, sqrt_bounded_grad
from lsm_jax.studies import eigen, report, runner
from lsm_jax.evaluation.benchmarks import bundled_set5
from lsm_jax.studies.sweep import Sweep, SweepError, override_flags, split_values, validate
from lsm_jax.training.config_loader import load_config
from lsm_jax.training.optimizer import make_optimizer

TINY = "lsm_light:tiny"
MICRO = dict(embed_dim=32, depth=(2,), num_heads=(2,), num_tokens=8, d_state=2, split_size=(4, 4))


def micro_net(**fields):
    cfg = load_config(TINY).model
    cfg.update(MICRO, **fields)
    cfg.scan.impl = "sequential"
    return cfg


# ---------------------------------------------------------------------------------------------
# The sweep grammar.


def test_grid_zip_and_typed_values():
    sweep = Sweep.parse(["model.rmin=0.4,0.9", "model.semantics=paper,reference"],
                        ["model.rmax=0.9,0.99", "model.max_phase=6.283,1.571"], seeds=2)
    settings = sweep.settings()
    assert len(settings) == 2 * 2 * 2
    assert settings[0].overrides == (("model.rmin", "0.4"), ("model.semantics", "paper"),
                                     ("model.rmax", "0.9"), ("model.max_phase", "6.283"))
    assert settings[-1].label == "rmin=0.9,semantics=reference,rmax=0.99,max_phase=1.571"
    assert len({s.label for s in settings}) == len(settings)
    assert split_values("(2, 2),(4, 4),'a,b'") == ["(2, 2)", "(4, 4)", "'a,b'"]
    config = load_config(TINY, override_flags([("model.rmin", "0.4"), ("model.depth", "(3, 3)"),
                                               ("model.semantics", "reference"), ("optim.freeze", "('nu', 'theta')"),
                                               ("ema_decay", "0")]))
    assert config.model.rmin == 0.4 and isinstance(config.model.rmin, float)
    assert config.model.depth == (3, 3) and config.model.semantics == "reference"
    assert config.optim.freeze == ("nu", "theta") and config.ema_decay == 0.0


@pytest.mark.parametrize("sweeps, zips, message", [
    (["model.rmni=0.4,0.9"], [], "--sweep model.rmni=0.4: no such config field"),
    (["model.rmin=0.4,abc"], [], "--sweep model.rmin=abc:"),
    ([], ["model.rmin=0.4,0.9", "model.rmax=0.9"], "--zip: the zipped fields need the same number of values"),
    (["model.rmin"], [], "--sweep model.rmin: expected KEY=V1,V2"),
    (["model.rmin=0.4,0.4"], [], "--sweep model.rmin=0.4,0.4: repeated value"),
    (["model.rmin=0.4", "model.rmin=0.9"], [], "--sweep/--zip model.rmin: the field is swept twice"),
])
def test_bad_flags_are_one_line_errors_naming_the_flag(sweeps, zips, message):
    with pytest.raises(SweepError) as err:
        validate(TINY, Sweep.parse(sweeps, zips, seeds=1))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


_SLURM = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_MAX", "SLURM_ARRAY_TASK_STEP",
          "SLURM_ARRAY_TASK_COUNT", "LSM_STUDY_RUN_INDEX", "LSM_STUDY_NUM_RUNS")


@pytest.mark.parametrize("first, step", [(0, 1), (1, 1), (5, 1), (1, 2)],
                         ids=["array=0-3", "array=1-4", "array=5-8", "array=1-7:2"])
def test_slurm_arrays_share_the_runs_whatever_their_first_task_id(monkeypatch, tmp_path, first, step):
    """Each task of a 4-task SLURM array gets every 4th run, the first task run 0, whether the array
    counts from 0, 1 or 5, or in steps of 2; together the tasks cover every run once."""
    runs = runner.runs_of(tmp_path, Sweep.parse(["model.rmin=0.4,0.6,0.9"], [], seeds=3))  # 9 runs
    for name in _SLURM:
        monkeypatch.delenv(name, raising=False)
    assert runner.select_runs(runs, None, None) == runs            # no array: one process runs everything
    ids = [first + step * k for k in range(4)]
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", str(ids[0]))
    monkeypatch.setenv("SLURM_ARRAY_TASK_MAX", str(ids[-1]))
    monkeypatch.setenv("SLURM_ARRAY_TASK_STEP", str(step))
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    shares = []
    for task in ids:
        monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(task))
        shares.append([r.index for r in runner.select_runs(runs, None, None)])
    assert shares == [[0, 4, 8], [1, 5], [2, 6], [3, 7]]
    monkeypatch.setenv("LSM_STUDY_RUN_INDEX", "2")                 # the study's own variables win
    assert [r.index for r in runner.select_runs(runs, None, None)] == [2, 6]
    assert [r.index for r in runner.select_runs(runs, 0, 2)] == [0, 2, 4, 6, 8]   # and the flags over both
    monkeypatch.delenv("LSM_STUDY_RUN_INDEX")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", str(ids[0] - 1))
    with pytest.raises(SweepError, match=f"SLURM_ARRAY_TASK_ID={ids[0] - 1}: not on the array"):
        runner.select_runs(runs, None, None)


# ---------------------------------------------------------------------------------------------
# A 1-setting × 2-seed study: runs, resumes after a kill, reports the runs' own numbers.


def _micro_study(tmp_path: Path) -> tuple[dict, Sweep]:
    """A config file for the micro network and a 2-image benchmark folder (LR made on the fly)."""
    from PIL import Image
    data = tmp_path / "bench"
    data.mkdir()
    hr = np.asarray(Image.open(bundled_set5() / "HR/baby.png").convert("RGB"))
    for i, (top, left) in enumerate([(100, 100), (200, 150)]):
        Image.fromarray(hr[top:top + 24, left:left + 24]).save(data / f"img{i}.png")
    conf = tmp_path / "micro.py"
    fields = ", ".join(f"{k}={v!r}" for k, v in MICRO.items())
    conf.write_text(f"from lsm_jax.training.config_loader import load_config\n"
                    f"def get_config(arg=''):\n"
                    f"    c = load_config('lsm_light:tiny')\n"
                    f"    c.model.update(dict({fields}))\n"
                    f"    c.model.scan.impl = 'sequential'\n"
                    f"    c.patch_size, c.batch_size, c.data.read_threads = 8, 8, 1\n"
                    f"    c.eval.num_images = 0\n"
                    f"    return c\n")
    sweep = Sweep.parse(["model.rmin=0.9"], [], seeds=2)   # one setting: the statistics have their own tests
    spec = runner.study_spec(f"{conf}:", sweep, [("checkpoint.every", "2")], 4, [str(data)])
    return spec, sweep


def test_study_runs_resumes_after_a_kill_and_reports_its_runs(tmp_path, compilation_cache):
    from lsm_jax.training import loop
    spec, sweep = _micro_study(tmp_path)
    study = tmp_path / "study"
    real = loop.train_and_evaluate
    calls = []

    def killed_in_run_1(config, workdir):
        calls.append(Path(workdir))
        if len(calls) == 2:  # the second run dies after its step-2 checkpoint
            short = config.copy_and_resolve_references()
            short.total_steps = 2
            real(short, workdir)
            raise KeyboardInterrupt
        return real(config, workdir)

    with pytest.raises(KeyboardInterrupt):
        runner.run_study(spec, sweep, study, train=killed_in_run_1)
    runs = runner.runs_of(study.absolute(), sweep)
    assert [(r.directory / runner.RESULT_FILE).is_file() for r in runs] == [True, False]

    summaries = []
    counts = runner.run_study(spec, sweep, study, train=lambda c, w: summaries.append(real(c, w)) or summaries[-1])
    assert counts == dict(done=1, skipped=1, failed=0, stopped=False)
    assert [s["start_step"] for s in summaries] == [2]   # the killed run resumed at its checkpoint
    assert all(s["final_step"] == 4 for s in summaries)

    data = report.collect(study)
    assert data["datasets"] == ["bench"] and [r["n"] for r in data["rows"]] == [2]
    own_psnr = {r.directory: json.loads((r.directory / "export/latest/train_info.json").read_text())["bench/psnr"]
                for r in runs}
    for row, setting in zip(data["rows"], sweep.settings()):
        own = [json.loads((r.directory / "export/latest/train_info.json").read_text()) for r in runs
               if r.setting == setting]
        assert all(o["step"] == 4 for o in own)
        psnr = [o["bench/psnr"] for o in own]
        assert row["stats"]["bench/psnr"][0] == pytest.approx(np.mean(psnr), abs=1e-12)
        assert row["stats"]["bench/psnr"].std == pytest.approx(np.std(psnr, ddof=1), abs=1e-12)
    result = json.loads((runs[1].directory / runner.RESULT_FILE).read_text())
    assert result["resumed_from"] == 2 and result["metrics"]["bench/psnr"] == own_psnr[runs[1].directory]
    # Not only a copy of train_info.json: the exported final weights, scored afresh by the evaluate
    # command on the same folder, give the run's PSNR and SSIM.
    from lsm_jax import evaluate
    fresh = evaluate.run(["--checkpoint", str(runs[1].directory / "export/latest"), "-i", spec["data"][0],
                           "--scale", "2", "-q", "--no-cache"])[0]
    assert fresh["dataset"] == "bench" and len(fresh["images"]) == 2
    assert result["metrics"]["bench/psnr"] == pytest.approx(fresh["psnr"], abs=1e-6)
    assert result["metrics"]["bench/ssim"] == pytest.approx(fresh["ssim"], abs=1e-8)
    paths = report.write_report(study, plots=False)
    md, csv_text = paths[0].read_text(), paths[1].read_text()
    # This micro study declares no baseline: no row is picked after the fact, and no Δ is shown.
    assert "No declared baseline" in md and "★" not in md and "◆" not in md
    for row in data["rows"]:
        line = next(ln for ln in csv_text.splitlines() if ln.startswith(row["label"]))
        assert line.endswith(",2,0") and f"{row['stats']['bench/psnr'][0]:.6g}" in line


def test_figures_from_eigenvalues_and_captured_states(tmp_path):
    from lsm_jax.studies import states
    cfg = micro_net()
    rng = np.random.default_rng(0)
    lams = {f"layers/{g}/blocks/1": 0.95 * np.exp(1j * rng.uniform(0, 6, 4)) for g in range(2)}
    panels = [("initial", lams), ("trained", {k: v * 0.99 for k, v in lams.items()})]
    category = np.array([[2, 0, 1, 0, 2, 1]])
    block = dict(category=category, sort_idx=np.argsort(category, kind="stable"),
                 lru_states=np.array([[[1.0, 2.0]] * 2 + [[0.8, 1.0], [0.3, 0.2]] + [[0.1, 0.1]] * 2]),
                 lru_lambda_eff=rng.uniform(0, 1, (1, 6, 2)))
    data = states.sorted_states(block)
    assert data["categories"].tolist() == [0, 0, 1, 1, 2, 2] and data["boundaries"].tolist() == [2, 4]
    assert states.carry_lengths(data["modulus"], data["boundaries"]).tolist() == [1, 0]
    written = [eigen.plot_plane(panels, cfg, tmp_path / "a.png"), eigen.plot_hist(panels, cfg, tmp_path / "b.png"),
               eigen.plot_memory(panels, (2, 3), "img", tmp_path / "c.png"),
               eigen.plot_effective([block, block], list(lams), "img", tmp_path / "d.png")]
    assert all(p.stat().st_size > 1000 for p in written)


# ---------------------------------------------------------------------------------------------
# Eigenvalues, parameter groups, freezing, γ.


def _lru_tree(cores: dict) -> dict:
    """A network-shaped parameter tree {'layers': {g: {'blocks': {j: {'lru': {'lru_core': ...}}}}}}."""
    tree: dict = {"conv_first": {"kernel": np.zeros((3, 3))}}
    for (g, j), core in cores.items():
        tree.setdefault("layers", {}).setdefault(g, {"blocks": {}})["blocks"][j] = {
            "lru": {"lru_core": nnx.to_pure_dict(nnx.state(core, nnx.Param))}, "gamma": np.ones(4)}
    return tree


def test_eigenvalue_extraction_equals_lrucore():
    cores = {(g, j): LRUCore(8, 4, rmin=0.4 + 0.1 * g, max_phase=1.0 + j, rngs=nnx.Rngs(10 * g + j))
             for g, j in [(1, 1), (0, 3), (0, 1), (1, 11)]}
    got = eigen.lru_eigenvalues(_lru_tree(cores))
    assert list(got) == ["layers/0/blocks/1", "layers/0/blocks/3", "layers/1/blocks/1", "layers/1/blocks/11"]
    for name, lam in got.items():
        g, j = int(name.split("/")[1]), int(name.split("/")[3])
        np.testing.assert_allclose(lam, np.asarray(cores[g, j].eigenvalues()), rtol=2e-6, atol=1e-7)
    assert eigen.NO_RECURRENCE.format(what="x").count("\n") == 0


@pytest.fixture(scope="module")
def params():
    """A network-shaped tree with two LRUs: ν, θ, γ and the B, C, D projections, plus other leaves."""
    return jax.tree.map(jnp.asarray, _lru_tree({(0, 1): LRUCore(8, 4, rngs=nnx.Rngs(0)),
                                                (1, 1): LRUCore(8, 4, rngs=nnx.Rngs(1))}))


def _grads(params):
    return jax.tree.map(lambda p: jnp.full_like(p, 0.3) + 0.01 * p, params)


def _update(tx, params):
    """One optimizer step from a fresh state, jitted (one compile instead of one per leaf op)."""
    return jax.jit(lambda p: tx.update(_grads(p), tx.init(p), p)[0])(params)


def _one_update(params, optim_fields: dict):
    config = load_config(TINY)
    config.optim.update(optim_fields)
    updates = _update(make_optimizer(config.optim)[0], params)
    return params, optax.apply_updates(params, updates), updates


def _by_name(tree):
    return {"/".join(str(getattr(k, "key", k)) for k in path if not hasattr(k, "name")): v
            for path, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


def test_default_optimizer_is_todays_adamw(params):
    c = load_config(TINY).optim
    _, _, updates = _one_update(params, {})
    todays = optax.adamw(make_optimizer(c)[1], b1=c.b1, b2=c.b2, eps=c.eps, weight_decay=c.weight_decay)
    expected = _update(todays, params)
    for a, b in zip(jax.tree.leaves(updates), jax.tree.leaves(expected)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("fields, frozen, scaled", [
    (dict(freeze=("nu", "theta")), {"nu_log", "theta_log"}, set()),
    (dict(freeze=("gamma_log", "B_re")), {"gamma_log", "B_re"}, set()),
    (dict(lru_lr_factor=0.5), set(), {"nu_log", "theta_log", "gamma_log"}),
])
def test_groups_and_freezing_change_exactly_the_named_parameters(params, fields, frozen, scaled):
    params, new, updates = _one_update(params, fields)
    _, _, plain = _one_update(params, {})
    before, after, upd, ref = map(_by_name, (params, new, updates, plain))
    for name in before:
        leaf = name.rsplit("/", 1)[-1]
        if leaf in frozen:
            np.testing.assert_array_equal(after[name], before[name])
        elif leaf in scaled:
            np.testing.assert_allclose(upd[name], 0.5 * ref[name], rtol=1e-6)
        else:
            assert not np.array_equal(after[name], before[name]), name
            np.testing.assert_array_equal(upd[name], ref[name])


def test_unknown_frozen_parameter_is_named(params):
    with pytest.raises(ValueError, match="optim.freeze: no parameter named 'nux'"):
        _one_update(params, dict(freeze=("nux",)))


def test_gamma_modes_and_bounded_sqrt():
    core = LRUCore(8, 4, rngs=nnx.Rngs(1))
    np.testing.assert_array_equal(core.input_gamma(), jnp.exp(core.gamma_log[...]))   # today's γ
    lam = np.abs(np.asarray(core.eigenvalues()))
    for mode, want in [("from_lambda", np.sqrt(1 - lam ** 2)), ("off", np.ones(4))]:
        other = LRUCore(8, 4, gamma=mode, rngs=nnx.Rngs(1))
        np.testing.assert_allclose(other.input_gamma(), want, rtol=1e-5)
    grad = jax.grad(sqrt_bounded_grad)
    assert float(grad(0.0)) == pytest.approx(1000.0) and math.isfinite(float(grad(0.0)))
    assert float(grad(0.25)) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="lru_gamma"):
        LRUCore(8, 4, gamma="nope", rngs=nnx.Rngs(1))


def test_command_line_typo_is_one_line_naming_the_flag(tmp_path, capsys):
    from lsm_jax.study import main
    code = main(["--config", TINY, "--workdir", str(tmp_path / "s"), "--sweep", "model.rmin=0.4,0.9",
                 "--sweep", "model.max_phse=1.571"])
    err = capsys.readouterr().err.splitlines()
    assert code == 2 and err[0].startswith("lsm-study run: error: --sweep model.max_phse=1.571: no such config "
                                           "field") and "max_phase" in err[0]
    assert not (tmp_path / "s").exists()


# ---------------------------------------------------------------------------------------------
# The command line: the commands, fixed fields as --config.KEY=VALUE, -i, -q.


def _stopped_study(monkeypatch):
    """runner.run_study replaced by a recorder that reports the study stopped (exit status 1)."""
    from lsm_jax.studies import runner as runner_mod
    seen = {}

    def record(spec, sweep, workdir, **kw):
        seen.update(spec=spec, sweep=sweep, workdir=workdir, **kw)
        return dict(done=0, skipped=0, failed=0, stopped=True)

    monkeypatch.setattr(runner_mod, "run_study", record)
    monkeypatch.setattr("logging.basicConfig", lambda **kw: seen.update(level=kw["level"]))
    return seen


@pytest.mark.parametrize("extra, quiet", [([], False), (["-q"], True), (["--quiet"], True)])
def test_fixed_fields_are_config_overrides_after_the_documents(monkeypatch, tmp_path, capsys, extra, quiet):
    from lsm_jax.study import main
    seen = _stopped_study(monkeypatch)
    set5 = str(bundled_set5())
    argv = [*extra, "--config", "studies/max_phase", "--workdir", str(tmp_path / "s"), "--config.batch_size=4",
            "--config.model.depth", "(2, 2)", "-i", set5, "--seeds", "1", "--steps", "8"]
    assert main(argv) == 1
    spec = seen["spec"]
    assert spec["set"] == ["ema_decay=0.99", "batch_size=4", "model.depth=(2, 2)"]   # the document's first
    assert spec["data"] == [set5] and spec["steps"] == 8 and seen["sweep"].seeds == 1
    out = capsys.readouterr().out
    assert out.startswith("[study] 4 setting(s)") != quiet and "[study] 0 run(s) trained" in out
    assert seen["level"] == (logging.WARNING if quiet else logging.INFO)


def test_the_old_data_spelling_is_still_read(monkeypatch, tmp_path):
    from lsm_jax.study import main
    seen = _stopped_study(monkeypatch)
    assert main(["run", "--config", TINY, "--workdir", str(tmp_path / "s"), "--data", str(bundled_set5())]) == 1
    assert seen["spec"]["data"] == [str(bundled_set5())]


@pytest.mark.parametrize("args, expected", [
    (["--set", "model.rmin=0.5"], "--set model.rmin=0.5: write config overrides as --config.KEY=VALUE "
                                  "(--config.model.rmin=0.5)"),
    (["--config.model.rmni=0.5"], "--config.model.rmni=0.5: no such config field"),
    (["--config.model.rmin=abc"], "--config.model.rmin=abc: "),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_fixed_fields_are_one_line_errors_before_any_run(args, expected, monkeypatch, tmp_path, capsys):
    from lsm_jax.study import main
    monkeypatch.setattr(runner, "run_study", lambda *a, **k: pytest.fail("nothing may run"))
    assert main(["--config", TINY, "--workdir", str(tmp_path / "s"), *args]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"lsm-study run: error: {expected}"), err
    assert not (tmp_path / "s").exists()


def test_help_lists_the_commands_and_each_has_its_own(capsys):
    from lsm_jax.study import COMMANDS, main
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    out = capsys.readouterr().out
    assert done.value.code == 0 and out.startswith("usage: lsm-study [run] --config")
    listed = [ln.split()[0] for ln in out.split("\ncommands:\n")[1].splitlines()[1:] if ln.startswith("    ")
              and not ln.startswith("     ")]
    assert listed == list(COMMANDS)
    for command in COMMANDS:
        with pytest.raises(SystemExit) as done:
            main([command, "--help"])
        out = capsys.readouterr().out
        assert done.value.code == 0 and out.startswith(f"usage: lsm-study {'[run]' if command == 'run' else command}")


def test_a_folder_that_is_not_a_study_says_what_makes_one(tmp_path, capsys):
    from lsm_jax.study import main
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == (f"lsm-study report: error: {tmp_path.absolute()}: no study.json, so not a study folder (`lsm-study "
                   f"--config NAME --workdir {tmp_path.absolute()}` makes one; a folder holding a study's runs.csv can "
                   f"be reported too)\n")


def test_states_and_eigen_read_the_image_as_input(monkeypatch, tmp_path):
    from lsm_jax import study
    from lsm_jax.studies import states
    seen = []
    monkeypatch.setattr(states, "make_figures", lambda ckpt, image, block, out: seen.append((image, out)) or [])
    monkeypatch.setattr(eigen, "make_figures", lambda ckpt, out, image, init_only, seed: seen.append((image, out)) or [])
    monkeypatch.setattr("logging.basicConfig", lambda **kw: None)
    assert study.main(["states", "ckpt", "-i", "a.png", "-o", "figs"]) == 0
    assert study.main(["eigen", "ckpt", "--input", "b.png", "--output", "figs2"]) == 0
    assert study.main(["-q", "eigen", "ckpt", "--image", "c.png", "--out", "figs3"]) == 0   # the old spellings
    assert seen == [("a.png", "figs"), ("b.png", "figs2"), ("c.png", "figs3")]
