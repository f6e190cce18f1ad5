r"""Train LSM on one CPU, one GPU, a GPU cluster or a TPU pod slice: one loop, no changes.

    python -m lsm_jax.train --config configs/lsm_light.py:x2_scratch --workdir runs/light_x2 \
        [--config.mesh.fsdp=8 --config.batch_size=64 ...]

Phases: (1) devices and mesh, (2) model, optimizer and shardings, (3) state: resume from the
workdir's latest checkpoint, else initialise (and load `init_from` for a finetune), (4) the jitted
step, (5) the loop: step, log, validate the EMA weights, checkpoint, stop on preemption.

The step is a pure function of (TrainState, batch) jitted with in/out shardings taken from the
parameters' logical axis names (`lsm_jax.sharding`) and the state buffers donated. Every process
runs the same program on its local share of the batch; `jax.make_array_from_process_local_data`
assembles the global batch.
"""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P

from lsm_jax import checkpointing, sharding, tb_logging, validation
from lsm_jax.network import LSM
from lsm_jax.optimizer import make_optimizer
from lsm_jax.train_state import (TrainState, abstract_like, count_params, ema_update, make_init_fn, merge_pretrained,
                                 split_model)
from lsm_jax.variants import resolve_semantics

log = logging.getLogger("lsm_jax.train")


class NonFiniteLossError(RuntimeError):
    """The loss or the gradient norm became NaN/inf; the run stops without saving that state."""


class TrainingError(ValueError):
    """A configuration that cannot be trained (one-line message naming the option)."""


# ---------------------------------------------------------------------------------------------
# Phase 1: processes, devices, mesh.


def initialize_distributed(cfg: ml_collections.ConfigDict) -> None:
    """`jax.distributed.initialize` when configured (empty fields are auto-detected)."""
    if not cfg.initialize:
        return
    kwargs = {}
    if cfg.coordinator_address:
        kwargs["coordinator_address"] = cfg.coordinator_address
    if cfg.num_processes > 0:
        kwargs["num_processes"] = int(cfg.num_processes)
    if cfg.process_id >= 0:
        kwargs["process_id"] = int(cfg.process_id)
    if not jax.distributed.is_initialized():
        jax.distributed.initialize(**kwargs)


def check_config(config: ml_collections.ConfigDict, mesh) -> None:
    """Rejects settings the loop cannot honour, naming the option."""
    shards = sharding.batch_shards(mesh, config.sharding.rules)
    if config.batch_size % shards:
        raise TrainingError(f"batch_size={config.batch_size} is not a multiple of the {shards} batch shards "
                            f"(mesh {dict(mesh.shape)}); change --config.batch_size or --config.mesh.*")
    if config.batch_size % jax.process_count():
        raise TrainingError(f"batch_size={config.batch_size} is not a multiple of the {jax.process_count()} processes")
    group = config.recurrence_group
    if group < 0 or (0 < group < config.batch_size and config.batch_size % group):
        raise TrainingError(f"recurrence_group={group} must be 0, ≥ batch_size, or divide batch_size="
                            f"{config.batch_size}")
    if config.loss != "l1":
        raise TrainingError(f"loss={config.loss!r}: only 'l1' (the authors' loss) is implemented")
    if not 0.0 <= config.ema_decay < 1.0:
        raise TrainingError(f"ema_decay={config.ema_decay} must be in [0, 1)")
    for name in ("total_steps", "batch_size", "patch_size", "log_every"):
        if config[name] < 1:
            raise TrainingError(f"{name}={config[name]} must be ≥ 1")


# ---------------------------------------------------------------------------------------------
# Phase 4: the step.


def make_train_forward(graphdef: nnx.GraphDef, rest: nnx.State, config: ml_collections.ConfigDict) -> Callable:
    """forward(params, x, key) -> y in training mode. Under semantics whose recurrence crosses images
    (reference, Q1/Q6) the batch is split into independent groups of `config.recurrence_group`
    images, as the authors' per-GPU batches were; images interact only within their group."""
    sem = resolve_semantics(config.model)
    cross_image = sem["scan_axis"] == "batch" or sem["mk_a_batch_mean"]
    group = config.recurrence_group if cross_image else 0

    def forward(params, x, key):
        run = lambda xs, k: nnx.merge(graphdef, params, rest)(xs, train=True, key=k)  # noqa: E731
        if not group or group >= x.shape[0]:
            return run(x, key)
        n = x.shape[0] // group
        ys = jax.vmap(run)(x.reshape(n, group, *x.shape[1:]), jax.random.split(key, n))
        return ys.reshape(x.shape[0], *ys.shape[2:])

    return forward


def make_train_step(graphdef: nnx.GraphDef, rest: nnx.State, tx: optax.GradientTransformation,
                    schedule: optax.Schedule, config: ml_collections.ConfigDict) -> Callable:
    """The pure step (state, batch) -> (state, metrics): L1 loss, AdamW update, EMA update."""
    forward = make_train_forward(graphdef, rest, config)
    decay = float(config.ema_decay)

    def train_step(state: TrainState, batch: dict[str, jax.Array]):
        key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)

        def loss_fn(params):
            pred = forward(params, batch["lq"], key)
            return jnp.mean(jnp.abs(pred.astype(jnp.float32) - batch["gt"]))

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                                  ema_params=ema_update(state.ema_params, params, decay))
        metrics = dict(loss=loss, grad_norm=optax.tree.norm(grads), lr=schedule(state.step))
        return new_state, metrics

    return train_step


class Parts(NamedTuple):
    """What the loop (and the tests and benchmarks) need, built for one config and mesh."""
    graphdef: nnx.GraphDef
    rest: nnx.State
    abstract_state: TrainState
    state_shardings: TrainState
    batch_sharding: NamedSharding
    replicated: NamedSharding
    init: Callable[[], TrainState]    # jitted: a fresh state, created in its shards
    step: Callable                   # jitted (state, batch) -> (state, metrics), state donated
    schedule: optax.Schedule


def build(config: ml_collections.ConfigDict, mesh) -> Parts:
    """Model structure, optimizer, shardings and the jitted init and step functions."""
    rules = [tuple(r) for r in config.sharding.rules]
    model_fn = lambda: LSM(config.model, rngs=nnx.Rngs(config.seed))  # noqa: E731
    graphdef, _, abstract_rest = split_model(nnx.eval_shape(model_fn))
    tx, schedule = make_optimizer(config.optim)
    init_fn = make_init_fn(model_fn, tx, config.seed)
    abstract_state = jax.eval_shape(init_fn)
    state_sh = sharding.tree_shardings(abstract_state, mesh, rules, config.sharding.min_size_to_shard)
    replicated = NamedSharding(mesh, P())
    rest = abstract_rest
    if jax.tree.leaves(abstract_rest):  # non-parameter model state (none in LSM today)
        rest = jax.jit(lambda: split_model(model_fn())[2], out_shardings=replicated)()
    batch_sh = sharding.batch_sharding(mesh, 4, rules)
    step = jax.jit(make_train_step(graphdef, rest, tx, schedule, config),
                   in_shardings=(state_sh, {"lq": batch_sh, "gt": batch_sh}),
                   out_shardings=(state_sh, replicated), donate_argnums=0)
    return Parts(graphdef, rest, abstract_state, state_sh, batch_sh, replicated,
                 jax.jit(init_fn, out_shardings=state_sh), step, schedule)


# ---------------------------------------------------------------------------------------------
# Preemption.


class StopSignal:
    """SIGTERM/SIGINT set a flag the loop checks after each step (single process). With several
    processes JAX's preemption service owns SIGTERM and `Checkpointer.reached_preemption` agrees on
    a common step."""

    def __init__(self):
        self.requested = None
        self._previous = {}
        if jax.process_count() == 1:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        if self.requested is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.requested = signal.Signals(signum).name

    def restore(self) -> None:
        """Puts the previous handlers back."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


# ---------------------------------------------------------------------------------------------
# The loop.


def _replicated_host(tree: Any) -> Any:
    """A fully replicated numpy copy of a (possibly sharded, multi-process) pytree."""
    if jax.process_count() == 1:
        return jax.tree.map(np.asarray, tree)
    return multihost_utils.process_allgather(tree, tiled=True)


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | Path) -> dict[str, Any]:
    """Runs (or resumes) training in `workdir`; returns a summary (steps, losses, PSNR, times)."""
    workdir = Path(workdir).absolute()
    # Phase 1: devices.
    initialize_distributed(config.distributed)
    is_main = jax.process_index() == 0
    mesh = sharding.make_mesh(**config.mesh)
    check_config(config, mesh)
    rules = [tuple(r) for r in config.sharding.rules]
    if is_main:
        log.info("devices: %d (%s) in %d process(es); mesh %s", jax.device_count(), jax.devices()[0].platform,
                 jax.process_count(), dict(mesh.shape))

    # Phase 2: model, optimizer, shardings; the validator checks its folders now, not hours later.
    parts = build(config, mesh)
    state_sh = parts.state_shardings
    validator = validation.Validator(parts.graphdef, parts.rest, state_sh.ema_params, parts.replicated, config)
    from lsm_jax.data import make_train_loader
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
                state = _load_pretrained(state, state_sh, config, is_main)
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
        writer = tb_logging.MetricWriter(workdir, enabled=is_main)
        cleanup.callback(writer.close)
        if is_main:
            log.info("compiled the step in %.1f s; %s parameters", summary["compile_s"],
                     f"{count_params(state.params):,}")
            writer.text(start, "config", f"```\n{config}\n```")
            writer.text(start, "sharding", "\n".join(f"{k}: {v}" for k, v in
                                                     sharding.describe(state_sh.params).items()))

        # Phase 5: the loop.
        stop = StopSignal()
        cleanup.callback(stop.restore)
        bar = tb_logging.ProgressBar(start, config.total_steps, enabled=is_main and config.progress_bar)
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
            state, metrics = compiled(state, batch)
            step += 1
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
                    scalars["perf/step_time_s"] = elapsed / steps_window
                    scalars["perf/images_per_s"] = config.batch_size * steps_window / elapsed
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
    return summary


def _export(export_dir: Path, net_cfg, ema_params, step: int, val: dict, best_psnr: float, is_main: bool,
            bar) -> float:
    """Writes the EMA weights to export/latest, and to export/best when the PSNR improved."""
    ema_host = _replicated_host(ema_params)  # every process takes part in the gather
    psnr = val.get("psnr", -math.inf)
    info = dict(step=step, **{k: v for k, v in val.items() if isinstance(v, float)})
    if is_main:
        checkpointing.export_model(export_dir / "latest", net_cfg, ema_host, info)
        if psnr > best_psnr:
            checkpointing.export_model(export_dir / "best", net_cfg, ema_host, info)
        if bar is not None and val:
            bar.write(f"step {step}: " + ", ".join(f"{k} {v:.4g}" for k, v in info.items() if k != "step"))
    return max(best_psnr, psnr)


def _load_pretrained(state: TrainState, state_sh: TrainState, config, is_main: bool) -> TrainState:
    """Finetune start: the previous stage's EMA weights into params and EMA; the optimizer is fresh."""
    from lsm_jax.model_io import load_model
    src = checkpointing.resolve_init_dir(config.init_from)
    old_model, _ = load_model(src)
    params, report = merge_pretrained(_replicated_host(state.params), nnx.state(old_model, nnx.Param),
                                      strict=config.init_strict, source=str(src))
    if is_main:
        log.info("initialised from %s (%s)%s", src, "strict" if config.init_strict else "non-strict",
                 "".join(f"\n  {line}" for line in report))
    params = jax.tree.map(np.asarray, params)
    return state.replace(params=sharding.place(params, state_sh.params),
                         ema_params=sharding.place(params, state_sh.ema_params))


# ---------------------------------------------------------------------------------------------
# Command line.


USAGE = ("usage: python -m lsm_jax.train --config configs/<variant>.py:<recipe> --workdir DIR "
         "[--config.key=value ...]")


def parse_args(argv: list[str]) -> tuple[ml_collections.ConfigDict, str]:
    """(config, workdir) from the command line; a typo or a wrong type in an override raises
    ValueError naming the offending flag."""
    from absl import flags
    from ml_collections import config_flags

    def parse(args):
        fv = flags.FlagValues()
        # sys_argv: config_flags finds the override flags there (default: the process's sys.argv).
        config_flags.DEFINE_config_file("config", None, "config file and recipe", flag_values=fv,
                                        lock_config=True, sys_argv=list(args))
        flags.DEFINE_string("workdir", None, "directory for checkpoints, logs and the exported model",
                            flag_values=fv)
        fv(args)
        _ = fv.config  # config_flags defers some load errors to first use
        return fv

    argv = list(argv)
    while "--config" in argv[1:-1]:  # "--config X" -> "--config=X", so the checks below see one form
        i = argv.index("--config", 1)
        argv[i:i + 2] = [f"--config={argv[i + 1]}"]
    for arg in argv[1:]:
        if arg.startswith("--config="):
            path = Path(arg.split("=", 1)[1].split(":", 1)[0])
            if not path.is_file():
                raise ValueError(f"--config: no config file {str(path)!r} (expected e.g. configs/lsm_light.py:tiny)")
    try:
        fv = parse(argv)
    except Exception as err:  # config_flags raises several types: name the flag that fails alone
        base = [a for a in argv[1:] if a.startswith("--config=")]
        culprit = next((a for a in argv[1:] if a.startswith("--config.") and _fails(parse, argv[:1] + base + [a])),
                       None)
        if isinstance(err, (AttributeError, KeyError)) and culprit:
            hint = str(err).strip("'\"").split("\\n")[-1].split("\n")[-1]
            raise ValueError(f"{culprit}: no such config field ({hint})") from None
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = lines[-1] if any("Traceback" in line for line in lines) else " ".join(lines)
        raise ValueError(f"{culprit}: {detail}" if culprit else detail) from None
    if fv.config is None or not fv.workdir:
        raise ValueError("--config and --workdir are required")
    return fv.config, fv.workdir


def _fails(parse, args) -> bool:
    try:
        parse(args)
    except Exception:
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m lsm_jax.train`; returns the exit status."""
    argv = sys.argv if argv is None else argv
    try:
        config, workdir = parse_args(argv)
    except ValueError as err:
        print(f"lsm_jax.train: error: {err}\n{USAGE}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    for noisy in ("absl", "jax"):  # orbax logs every file it writes at INFO, jax every backend it probes
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        summary = train_and_evaluate(config, workdir)
    except NonFiniteLossError as err:
        print(f"lsm_jax.train: {err}", file=sys.stderr)
        return 1
    except (ValueError, FileNotFoundError) as err:  # configuration and input errors name their option/file
        log.debug("details", exc_info=True)
        print(f"lsm_jax.train: error: {err}", file=sys.stderr)
        return 2
    log.info("done at step %d%s", summary["final_step"], " (preempted)" if summary["preempted"] else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
