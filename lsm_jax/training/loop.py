r"""Train LSM on one CPU, one GPU, a GPU cluster or a TPU pod slice: one loop, no changes.

    python -m lsm_jax.train --config configs/lsm_light.py:x2_scratch --workdir runs/light_x2 \
        [--config.mesh.fsdp=8 --config.batch_size=64 ...]

Phases: (1) devices and mesh, (2) model, optimizer and shardings, (3) state: resume from the
workdir's latest checkpoint, else initialise (and load `init_from` for a finetune), (4) the jitted
step, (5) the loop: step, log, validate the EMA weights, checkpoint, stop on preemption.

The step is built in `lsm_jax.training.step`. Every process runs the same program on its local
share of the batch; `jax.make_array_from_process_local_data` assembles the global batch.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np

from lsm_jax.runtime import compile_cache
from lsm_jax.training import checkpointing, reporting, sharding, throughput, validation
from lsm_jax.training.distributed import StopSignal, initialize_distributed, replicated_host
from lsm_jax.training.finetune import load_pretrained
from lsm_jax.training.state import abstract_like, count_params
from lsm_jax.training.step import build, check_config

log = logging.getLogger("lsm_jax.train")


class NonFiniteLossError(RuntimeError):
    """The loss or the gradient norm became NaN/inf; the run stops without saving that state."""


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, Any]:
    """Runs (or resumes) training in `workdir`; returns a summary (steps, losses, PSNR, times)."""
    workdir = Path(workdir).absolute()
    # Phase 1: devices.
    initialize_distributed(config.distributed)
    cache_dir = compile_cache.configure(config.get("compile_cache_dir", "auto"))
    is_main = jax.process_index() == 0
    mesh = sharding.make_mesh(**config.mesh)
    check_config(config, mesh)
    rules = [tuple(r) for r in config.sharding.rules]
    if is_main:
        log.info("devices: %d (%s) in %d process(es); mesh %s", jax.device_count(), jax.devices()[0].platform,
                 jax.process_count(), dict(mesh.shape))
        log.info("resolved config saved to %s", reporting.save_config(workdir, config))

    # Phase 2: model, optimizer, shardings; the validator checks its folders now, not hours later.
    parts = build(config, mesh)
    state_sh = parts.state_shardings
    validator = validation.Validator(parts.graphdef, parts.rest, state_sh.ema_params, parts.replicated, config)
    from lsm_jax.data.pipeline import make_train_loader
    data_iter = iter(make_train_loader(config.data, scale=int(config.model.upscale),
                                       global_batch_size=config.batch_size, seed=config.seed,
                                       shard_index=jax.process_index(), shard_count=jax.process_count()))

    with contextlib.ExitStack() as cleanup:
        # Phase 3: state: resume, else initialise (and load the previous stage for a finetune).
        ckpt = checkpointing.Checkpointer(workdir / "checkpoints", keep=config.checkpoint.keep,
                                          async_save=config.checkpoint.async_save)
        cleanup.callback(ckpt.close)  # waits for a save in flight: a good state, never a non-finite one
        export_dir = workdir / "export"
        for name in ("latest", "best"):
            checkpointing.recover_export(export_dir / name)
        best_psnr = (checkpointing.read_export_info(export_dir / "best") or {}).get("psnr", -math.inf)
        if ckpt.latest_step() is not None:
            state, data_state = ckpt.restore(ckpt.latest_step(), abstract_like(parts.abstract_state, state_sh))
            data_iter.set_state(data_state)
            if is_main:
                log.info("resumed from %s", ckpt.directory / str(ckpt.latest_step()))
        else:
            state = parts.init()
            if config.init_from:
                state = load_pretrained(state, state_sh, config, is_main)
        start = step = int(state.step)
        summary: dict[str, Any] = dict(workdir=str(workdir), start_step=start, final_step=start, losses=[],
                                       preempted=False, best_psnr=best_psnr, compile_s=0.0, train_s=0.0)
        if start >= config.total_steps:
            log.info("nothing to do: step %d ≥ total_steps %d", start, config.total_steps)
            return summary

        # Phase 4: the jitted step, compiled ahead of time (its time is reported apart).
        batch = sharding.global_batch(next(data_iter), mesh, rules)
        t0 = time.perf_counter()
        compiled = parts.step.lower(state, batch).compile()
        summary["compile_s"] = time.perf_counter() - t0
        # With gradient accumulation the cost analysis counts the step's scan body once: its FLOPs
        # come from the body compiled alone (throughput.step_cost); not part of the step's compile time.
        micro = parts.lower_micro_step(batch)
        meter = throughput.Meter(compiled, config.batch_size, jax.devices(), parts.grad_accum_steps,
                                 micro.compile() if micro is not None else None)
        summary["flops_per_step"] = meter.flops_per_step
        writer = reporting.MetricWriter(workdir, enabled=is_main)
        cleanup.callback(writer.close)
        if is_main:
            log.info("compiled the step in %.1f s (compilation cache: %s); %s parameters; %s",
                     summary["compile_s"], cache_dir or "off", f"{count_params(state.params):,}", meter.describe())
            writer.text(start, "config", f"```\n{config}\n```")
            writer.text(start, "sharding", "\n".join(f"{k}: {v}" for k, v in
                                                     sharding.describe(state_sh.params).items()))

        # Phase 5: the loop.
        stop = StopSignal()
        cleanup.callback(stop.restore)
        profiler = throughput.Profiler(workdir / "profile", config.get("profile"))
        cleanup.callback(profiler.stop)
        bar = reporting.ProgressBar(start, config.total_steps, enabled=is_main and config.progress_bar)
        cleanup.callback(bar.close)
        pending: list[tuple[int, dict]] = []
        window: list[dict] = []
        t_window, steps_window = time.perf_counter(), 0

        def drain(keep_last: int = 0) -> None:
            """Fetches finished steps' metrics (all but the newest `keep_last`) and checks them."""
            while len(pending) > keep_last:
                at, m = pending.pop(0)
                m = {k: float(v) for k, v in jax.device_get(m).items()}
                if not (math.isfinite(m["loss"]) and math.isfinite(m["grad_norm"])):
                    ckpt.wait()  # a save in flight holds an earlier, finite state: let it land
                    raise NonFiniteLossError(
                        f"non-finite loss {m['loss']} / grad norm {m['grad_norm']} at step {at}; stopping. "
                        f"The last good checkpoint is step {ckpt.latest_step()} in {ckpt.directory} "
                        f"(try a lower --config.optim.lr or --config.optim.grad_clip_norm)")
                window.append(m)
                summary["losses"].append((at, m["loss"]))
                bar.update(1, loss=m["loss"], lr=m["lr"])

        while step < config.total_steps:
            profiler.before_step(step)
            with jax.profiler.StepTraceAnnotation("train", step_num=step):
                state, metrics = compiled(state, batch)
            step += 1
            profiler.after_step(step, state)
            steps_window += 1
            pending.append((step, metrics))
            drain(keep_last=1)  # the previous step's metrics, fetched while this step runs
            stop_now = stop.requested is not None or ckpt.reached_preemption(step)
            last = step == config.total_steps
            do_eval = config.eval.every > 0 and (step % config.eval.every == 0 or last)
            do_ckpt = do_eval or stop_now or last or \
                (config.checkpoint.every > 0 and step % config.checkpoint.every == 0)
            if do_ckpt or step % config.log_every == 0:
                drain()
                elapsed = time.perf_counter() - t_window
                summary["train_s"] += elapsed
                if window:
                    scalars = {f"train/{k}": float(np.mean([m[k] for m in window])) for k in window[0]}
                    scalars.update(meter.scalars(elapsed / steps_window))
                    writer.scalars(step, scalars)
                    window.clear()
                val = None
                if do_eval:
                    val = validator.run(step, state.ema_params, writer)
                    best_psnr = _export(export_dir, config.model, state.ema_params, step, val, best_psnr,
                                        is_main, bar)
                if do_ckpt:  # the data state here is "after `step` batches": the next one is not drawn yet
                    metric = {checkpointing.BEST_METRIC: val["psnr"]} if val and "psnr" in val else None
                    ckpt.save(step, state, data_iter.get_state(), metrics=metric)
                writer.flush()
                if stop_now:
                    summary["preempted"] = True
                    bar.write(f"stopping at step {step} ({stop.requested or 'preemption notice'}); checkpoint "
                              f"saved in {ckpt.directory}; run the same command to resume")
                    break
                t_window, steps_window = time.perf_counter(), 0
            if not last:
                batch = sharding.global_batch(next(data_iter), mesh, rules)

        if config.eval.every <= 0:  # no validation exported the weights: export the final EMA
            _export(export_dir, config.model, state.ema_params, step, {}, best_psnr, is_main, None)
    summary.update(final_step=step, best_psnr=best_psnr, step_s=summary["train_s"] / max(step - start, 1))
    if step > start:
        summary.update(meter.scalars(summary["step_s"]))
        if is_main:
            log.info("throughput over the run: %s", meter.line(summary["step_s"]))
    return summary


def _export(export_dir: Path, net_cfg, ema_params, step: int, val: dict, best_psnr: float, is_main: bool,
            bar) -> float:
    """Writes the EMA weights to export/latest, and to export/best when the PSNR improved."""
    ema_host = replicated_host(ema_params)  # every process takes part in the gather
    psnr = val.get("psnr", -math.inf)
    info = dict(step=step, **{k: v for k, v in val.items() if isinstance(v, float)})
    if is_main:
        checkpointing.export_model(export_dir / "latest", net_cfg, ema_host, info)
        if psnr > best_psnr:
            checkpointing.export_model(export_dir / "best", net_cfg, ema_host, info)
        if bar is not None and val:
            bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in info.items() if k != "step"))
    return max(best_psnr, psnr)
