"""Pod-oriented training features: gradient accumulation, large-batch LR scaling, activation sharding
constraints, and one short run that logs throughput/MFU, writes a profile and fills the
persistent compilation cache."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from lsm_jax.model import smu
from lsm_jax.training import lr_scaling, loop, reporting, sharding
from lsm_jax.training.step import TrainingError, build, check_config, split_micro_batches
from fixture_training import micro_config

# Compiler options for programs a test runs once: XLA's CPU backend skips LLVM's optimisations, which
# about halves the compile time; the HLO program (what is computed) is the same.
FAST_COMPILE = {"xla_backend_optimization_level": 0}


def test_micro_batches_stay_on_their_devices():
    mesh = sharding.make_mesh(-1, 1, 1, devices=jax.devices()[:4])
    x = jax.device_put(np.arange(16.0), sharding.batch_sharding(mesh, 1))
    micro = split_micro_batches(x, 2)
    np.testing.assert_array_equal(micro, [[0, 2, 4, 6, 8, 10, 12, 14], [1, 3, 5, 7, 9, 11, 13, 15]])
    # Device d held rows 4d..4d+3 and still holds them: micro-batch j has rows 4d+j, 4d+j+2.
    per_device = {s.device: np.asarray(s.data).ravel().tolist() for s in jax.jit(
        lambda v: split_micro_batches(v, 2), out_shardings=jax.NamedSharding(mesh, jax.P(None, "data")))(x)
        .addressable_shards}
    assert sorted(per_device.values()) == [[0, 2, 1, 3], [4, 6, 5, 7], [8, 10, 9, 11], [12, 14, 13, 15]]


def test_gradient_accumulation_equals_one_full_batch_step(monkeypatch):
    # Categories by argmax (no Gumbel noise), no drop path: the step is then a deterministic function
    # of the batch, and k micro-batches must give the full batch's mean loss and gradient.
    plain = smu.categorise
    monkeypatch.setattr(smu, "categorise", lambda logits, key: plain(logits, None))
    mesh = sharding.make_mesh(-1, 1, 1, devices=jax.devices()[:4])
    rng = np.random.default_rng(0)
    lq = rng.random((8, 8, 8, 3), np.float32)
    batch = sharding.global_batch({"lq": lq, "gt": lq.repeat(2, 1).repeat(2, 2)}, mesh)
    results, init = [], None
    with jax.default_matmul_precision("highest"):
        for k in (1, 2):
            parts = build(micro_config(grad_accum_steps=k), mesh)
            # One initial state for both (the step donates it); both programs compiled with XLA's
            # backend (LLVM) optimisations off, which halves the compile time (FAST_COMPILE).
            init = init or jax.device_get(parts.init.lower().compile(FAST_COMPILE)())
            state = sharding.place(init, parts.state_shardings)
            state, metrics = parts.step.lower(state, batch).compile(FAST_COMPILE)(state, batch)
            results.append((float(metrics["loss"]), float(metrics["grad_norm"]), jax.tree.leaves(state.params)))
    (l1, g1, p1), (l2, g2, p2) = results
    assert l1 == pytest.approx(l2, rel=1e-5) and g1 == pytest.approx(g2, rel=1e-4)
    for a, b in zip(p1, p2):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_grad_accum_settings_are_checked():
    mesh = sharding.make_mesh(-1, 1, 1, devices=jax.devices()[:4])
    with pytest.raises(TrainingError, match="grad_accum_steps=3"):
        check_config(micro_config(grad_accum_steps=3), mesh)
    with pytest.raises(TrainingError, match="cross-image recurrence"):
        check_config(micro_config(grad_accum_steps=2, **{"model.semantics": "reference"}), mesh)


@pytest.mark.parametrize("mode, lr, warmup", [("none", 1e-3, 100), ("linear", 8e-3, 16000),
                                              ("sqrt", 1e-3 * 8 ** 0.5, round(2000 * 8 ** 0.5))])
def test_large_batch_lr_scaling(mode, lr, warmup):
    config = micro_config(**{"optim.lr_scaling": mode, "optim.lr_reference_batch": 8})
    scaled = lr_scaling.scale_optim(config.optim, 64)
    assert scaled.lr == pytest.approx(lr) and scaled.warmup_steps == warmup
    with pytest.raises(ValueError, match="optim.lr_scaling"):
        lr_scaling.lr_factor("cubic", 64, 8)


def test_activations_carry_the_rule_tables_sharding():
    mesh = sharding.make_mesh(-1, 1, 1, devices=jax.devices()[:4])
    counts = []
    for on in (True, False):
        config = micro_config(**{"sharding.constrain_activations": on})
        parts = build(config, mesh)
        lq = jax.ShapeDtypeStruct((8, 8, 8, 3), np.float32, sharding=parts.batch_sharding)
        gt = jax.ShapeDtypeStruct((8, 16, 16, 3), np.float32, sharding=parts.batch_sharding)
        from lsm_jax.training.state import abstract_like
        text = parts.step.lower(abstract_like(parts.abstract_state, parts.state_shardings),
                                {"lq": lq, "gt": gt}).as_text()
        counts.append(text.count("sharding_constraint") + text.count("@Sharding"))
    # Two blocks plus two feature maps, forward (the backward pass adds its own).
    assert counts[0] >= 4 and counts[1] == 0, counts


def test_run_logs_throughput_writes_a_profile_and_fills_the_compile_cache(tmp_path):
    cache = tmp_path / "xla_cache"
    from jax.experimental.compilation_cache import compilation_cache as cc
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs", "jax_enable_compilation_cache")
    old = {k: getattr(jax.config, k) for k in names}
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    try:
        # One WMS block (the loop's features do not depend on the blocks): the fresh cache compiles
        # everything, and one block compiles in half the time of two.
        config = micro_config(3, **{"profile.start_step": 1, "profile.num_steps": 1, "log_every": 1,
                                    "compile_cache_dir": str(cache), "model.depth": [1], "model.num_heads": [2]})
        summary = loop.train_and_evaluate(config, tmp_path / "w")
    finally:  # the other tests' cache settings back
        for key, value in old.items():
            jax.config.update(key, value)
        cc.reset_cache()
    assert summary["flops_per_step"] > 0 and summary["perf/images_per_s_per_device"] > 0
    records = [r for r in reporting.read_history(tmp_path / "w") if "perf/step_time_s" in r]
    assert len(records) == 3 and all(r["perf/flops_per_step"] == summary["flops_per_step"] for r in records)
    assert "perf/mfu" not in records[0]  # a CPU is not in the chip table
    assert list((tmp_path / "w" / "profile").rglob("*.xplane.pb")), "no profiler trace written"
    assert any(cache.iterdir()), "the compilation cache stayed empty"
