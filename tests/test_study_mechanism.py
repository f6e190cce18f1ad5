"""The ring-ablation study's pieces: the `mk_a_scale` variant of the decay, the memory length computed
from a decay sequence, the bundled held-out Gray6 set, harvesting a workdir's runs into the committed
study folder, and the committed tables rebuilt from the committed runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lsm_jax.model.network import LSM, capture
from lsm_jax.model.variants import network_config
from lsm_jax.studies.mechanism import efolding, memory_lengths

STUDIES = Path(__file__).resolve().parents[1] / "experiments" / "results" / "studies"
RESULTS = STUDIES / "ring_ablation"


def test_memory_length_of_a_constant_decay_by_hand():
    # |a| = 0.5: 0.5 > 1/e, 0.25 < 1/e -> 2 tokens; |a| = 0.9: 0.9^9 = 0.387 > 1/e, 0.9^10 = 0.349 -> 10.
    decay = np.stack([np.full(40, 0.5), np.full(40, 0.9)], axis=1)
    k, censored = memory_lengths(decay)
    assert (k[:30, 0] == 2).all() and (k[:25, 1] == 10).all()
    assert not censored[:30].any()
    # Near the end the sequence runs out first: censored at the tokens that were left.
    assert censored[39].all() and k[39].tolist() == [0, 0]
    assert k[35, 1] == 4 and censored[35, 1]


def test_memory_length_follows_a_varying_decay():
    # Written at t = 0, multiplied by a[1], a[2], ...: 0.9 · 0.9 · 0.1 -> below 1/e at the 3rd token after.
    decay = np.array([[0.5], [0.9], [0.9], [0.1], [0.99], [0.99]])
    k, censored = memory_lengths(decay)
    assert k[0, 0] == 3 and not censored[0, 0]
    assert k[2, 0] == 1                       # a[3] = 0.1 at once
    assert k[3, 0] == 2 and censored[3, 0]    # 0.99 · 0.99 never reaches 1/e: two tokens left, censored


def test_efolding_length_by_hand():
    # −1/ln|a|: 1/e lasts one token, 0.5 lasts 1/ln 2 = 1.4427, 0.99 lasts 99.5; a complex a by its modulus.
    got = efolding(np.array([math.exp(-1.0), 0.5, 0.99, 0.6j]))
    np.testing.assert_allclose(got, [1.0, 1.0 / math.log(2.0), -1.0 / math.log(0.99), -1.0 / math.log(0.6)])
    assert efolding(np.array([0.0]))[0] < 1e-2 and np.isfinite(efolding(np.array([1.0]))).all()


def _decay_and_mk(scale: float):
    cfg = network_config("tiny", 2)
    cfg.update(embed_dim=32, num_tokens=16, d_state=4, depth=[2], num_heads=[2], semantics="paper",
               mk_a_scale=scale)
    model = LSM(cfg, rngs=nnx.Rngs(3))
    x = jax.random.uniform(jax.random.key(0), (1, 12, 12, 3))
    with jax.default_matmul_precision("highest"):
        _, acts = capture(model, x)
    block = acts["cml_blocks"][0]
    core = model.layers[0].blocks[1].lru.lru_core
    mk_sorted = jnp.take_along_axis(block["Mk"], block["sort_idx"][..., None], axis=1)
    return np.asarray(block["lru_lambda_eff"]), np.asarray(core.eigenvalues()), np.asarray(mk_sorted[..., :4])


def test_mk_a_scale_default_is_the_authors_decay_and_the_variant_rescales_and_clips():
    got, lam, mk_a = _decay_and_mk(1.0)
    np.testing.assert_allclose(got, lam * mk_a, rtol=1e-6, atol=1e-7)
    got16, lam16, mk_a16 = _decay_and_mk(16.0)
    want = lam16 * np.minimum(16.0 * mk_a16, 1.0)
    np.testing.assert_allclose(got16, want, rtol=1e-6, atol=1e-7)
    assert np.abs(got16).mean() > 4 * np.abs(got).mean()     # the point of the variant: λ's memory survives
    assert (np.abs(got16) <= np.abs(lam16) + 1e-6).all()      # and stays a stable recurrence


def test_mk_a_scale_must_be_positive():
    cfg = network_config("tiny", 2)
    cfg.update(depth=[2], num_heads=[2], mk_a_scale=0.0)
    with pytest.raises(ValueError, match="mk_a_scale must be > 0"):
        nnx.eval_shape(lambda: LSM(cfg, rngs=nnx.Rngs(0)))


def test_gray6_is_bundled_and_scored_with_lr_made_on_the_fly():
    from lsm_jax.evaluation.benchmarks import resolve_benchmark_dir
    from lsm_jax.evaluation.scoring import find_pairs
    from lsm_jax.data.sources import EMBEDDED_NAMES
    name, pairs, on_the_fly = find_pairs(resolve_benchmark_dir("data/Gray6"), 2)
    assert name == "Gray6" and on_the_fly and len(pairs) == 6
    assert not {p.name for p in pairs} & set(EMBEDDED_NAMES)   # held out from the training source


@pytest.mark.parametrize("folder", ["ring_ablation", "ring_ablation_1600"])
def test_committed_ring_ablation_tables_are_rebuilt_from_its_runs(folder):
    from experiments import ring_ablation
    assert ring_ablation.check(STUDIES / folder) == []


def test_check_notices_a_changed_mechanism_file(tmp_path):
    import shutil
    from experiments import ring_ablation
    out = shutil.copytree(STUDIES / "ring_ablation_1600", tmp_path / "study")
    path = sorted(out.glob("runs/*/seed0/mechanism.json"))[0]
    data = json.loads(path.read_text())
    data["decay"]["median"] *= 1.5
    path.write_text(json.dumps(data))
    assert ring_ablation.check(out) == [f"{out / 'mechanism_runs.csv'}: differs from the runs' mechanism.json files",
                                        f"{out / 'mechanism.csv'}: differs from the runs' mechanism.json files"]


def _summary(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return dict(recurrence=True, decay=dict(p10=0.01, median=0.05, p90=0.2), decay_mean=0.07,
                efold=dict(p10=0.2, median=0.3, p90=0.6), memory=dict(p10=1.0, median=1.0, p90=2.0),
                memory_censored=0.0, lambda_abs_initial=0.95, lambda_abs_trained=0.951, bare_efold_median=20.0,
                decay_hist=rng.integers(0, 9, 100), efold_hist=rng.integers(0, 9, 60),
                eigen_initial=(rng.random(8) + 1j * rng.random(8)).astype(np.complex64),
                eigen_trained=(rng.random(8) + 1j * rng.random(8)).astype(np.complex64), rings=(0.9, 0.99))


def test_mechanism_summary_survives_json():
    from lsm_jax.studies.mechanism import summary_from_json, summary_to_json
    summary = _summary(0)
    back = summary_from_json(json.loads(json.dumps(summary_to_json(summary))))
    for key, value in summary.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(back[key], value)
        else:
            assert back[key] == value


def _workdir(path: Path, steps: int, seeds: list[int]) -> Path:
    label = "rmin=0.9"
    (path / "runs" / label).mkdir(parents=True)
    (path / "study.json").write_text(json.dumps(dict(config="c", zip=["model.rmin=0.9"], sweep=[], seeds=2,
                                                     set=[], steps=steps, data=[], baseline=None)))
    for seed in seeds:
        run = path / "runs" / label / f"seed{seed}"
        run.mkdir()
        (run / "result.json").write_text(json.dumps(dict(label=label, seed=seed, status="done",
                                                         metrics={"Set5/psnr": 35.0 + seed})))
    return path


def test_harvest_adds_each_finished_run_once_and_refuses_another_study(tmp_path, monkeypatch):
    from experiments import ring_ablation
    from lsm_jax.studies import mechanism
    calls = []
    monkeypatch.setattr(mechanism, "summarise_run", lambda run_dir: calls.append(run_dir) or _summary(len(calls)))
    out = tmp_path / "out"
    assert ring_ablation.harvest(_workdir(tmp_path / "a", 2400, [0]), out) == ["rmin=0.9/seed0"]
    assert ring_ablation.harvest(_workdir(tmp_path / "b", 2400, [0, 1]), out) == ["rmin=0.9/seed1"]
    assert len(calls) == 2   # seed 0 was already there with the same result
    run = out / "runs" / "rmin=0.9" / "seed1"
    assert json.loads((run / "result.json").read_text())["metrics"] == {"Set5/psnr": 36.0}
    assert json.loads((run / "mechanism.json").read_text())["decay"]["median"] == 0.05
    assert not list(out.rglob("*.tmp"))
    with pytest.raises(ValueError, match="another study"):
        ring_ablation.harvest(_workdir(tmp_path / "c", 1600, [0]), out)
