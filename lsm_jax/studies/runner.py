"""Runs a study: every (setting, seed) is an ordinary training workdir under `<study>/runs/`.

    <study>/study.json                        the study's definition (config, axes, seeds, steps, data)
    <study>/runs/<label>/seed<k>/             a training workdir (checkpoints/, export/, metrics.jsonl)
    <study>/runs/<label>/seed<k>/run.json     what the run is (overrides, seed)
    <study>/runs/<label>/seed<k>/result.json  written once the run is finished and scored

A run with a result.json is skipped; one without resumes from its latest checkpoint, so a killed
study restarts where it stopped. With `--run-index i --num-runs n` (or LSM_STUDY_RUN_INDEX /
LSM_STUDY_NUM_RUNS, or a SLURM job array) a process runs every n-th run, starting at i.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import ml_collections

from lsm_jax.studies.sweep import Setting, Sweep, SweepError, override_flags
from lsm_jax.training.config_loader import load_config

log = logging.getLogger("lsm_jax.study")

RESULT_FILE = "result.json"
RUN_FILE = "run.json"
STUDY_FILE = "study.json"


@dataclass(frozen=True)
class Run:
    """One training run of a study."""
    index: int
    setting: Setting
    seed: int            # 0 .. seeds-1; the config's seed is offset by it
    directory: Path


def write_json(path: Path, data: Any) -> None:
    """Writes JSON to a temporary name, then renames it into place (never half-written)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def study_spec(config_arg: str, sweep: Sweep, fixed: list[tuple[str, str]], steps: int | None,
               data: list[str], baseline: str | None = None) -> dict[str, Any]:
    """The definition stored in study.json (what makes two invocations the same study). `baseline`,
    the label of the row every other row is compared with (declared before the runs, never the best
    row picked afterwards), is stored only when declared and must be one of the sweep's settings."""
    spec = dict(config=config_arg, **sweep.to_json(), set=[f"{k}={v}" for k, v in fixed], steps=steps, data=data)
    if baseline is not None:
        labels = [s.label for s in sweep.settings()]
        if baseline not in labels:
            raise SweepError(f"baseline {baseline!r}: not a setting of the sweep (settings: {', '.join(labels)})")
        spec["baseline"] = baseline
    return spec


def versions() -> dict[str, str]:
    """The versions a run's numbers depend on: Python, jax, jaxlib, flax, optax, numpy, and this
    repository's git commit (empty where unknown)."""
    import platform
    import subprocess
    from importlib import metadata
    out = {"python": platform.python_version()}
    for package in ("jax", "jaxlib", "flax", "optax", "numpy"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = ""
    try:
        out["lsm_jax_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent,
                                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        out["lsm_jax_commit"] = ""
    return out


def runs_of(workdir: Path, sweep: Sweep) -> list[Run]:
    """Every run of the study, settings outermost, seeds innermost."""
    out = []
    for setting in sweep.settings():
        for seed in range(sweep.seeds):
            out.append(Run(len(out), setting, seed, workdir / "runs" / setting.label / f"seed{seed}"))
    return out


def rescale_steps(config: ml_collections.ConfigDict, steps: int, keep: frozenset[str] = frozenset()) -> None:
    """Shortens (or lengthens) the recipe to `steps`: warmup, milestones and decay scale with it,
    validation runs once at the end, checkpoints every quarter, logs ten times. Fields named in
    `keep` (set explicitly by the study) are left alone."""
    if steps < 1:
        raise SweepError(f"--steps {steps}: must be ≥ 1")
    ratio = steps / config.total_steps
    new = {"total_steps": steps,
           "optim.warmup_steps": round(config.optim.warmup_steps * ratio),
           "optim.milestones": tuple(round(m * ratio) for m in config.optim.milestones),
           "optim.decay_steps": max(round(config.optim.decay_steps * ratio), 1) if config.optim.decay_steps else 0,
           "eval.every": steps, "checkpoint.every": max(steps // 4, 1),
           "log_every": max(min(config.log_every, steps // 10), 1)}
    for key, value in new.items():
        if key not in keep:
            *parents, leaf = key.split(".")
            target = config
            for p in parents:
                target = target[p]
            target[leaf] = value


def run_config(spec: dict[str, Any], run: Run) -> ml_collections.ConfigDict:
    """The training config of one run: the config (name or file), the fixed overrides, the setting, seed,
    steps, data."""
    fixed = [tuple(s.split("=", 1)) for s in spec["set"]]
    overrides = [*fixed, *run.setting.overrides]
    config = load_config(spec["config"], override_flags(overrides))
    config.seed = int(config.seed) + run.seed
    if spec["steps"]:
        rescale_steps(config, int(spec["steps"]), frozenset(k for k, _ in overrides))
    if spec["data"]:
        config.eval.dirs = tuple(spec["data"])
    if config.eval.every <= 0 or config.total_steps % config.eval.every:
        config.eval.every = config.total_steps   # the study scores the final weights
    config.progress_bar = False
    return config


def slurm_array_index(env) -> int | None:
    """This task's 0-based position in a SLURM job array, or None outside one.

    SLURM_ARRAY_TASK_ID is the array's own number (`--array=1-4` gives 1..4, `--array=0-6:2` gives
    0, 2, 4, 6): the position is (ID - SLURM_ARRAY_TASK_MIN) / SLURM_ARRAY_TASK_STEP.
    """
    if "SLURM_ARRAY_TASK_ID" not in env:
        return None
    task = int(env["SLURM_ARRAY_TASK_ID"])
    offset = task - int(env.get("SLURM_ARRAY_TASK_MIN", 0))
    step = int(env.get("SLURM_ARRAY_TASK_STEP", 1) or 1)
    if offset < 0 or offset % step:
        found = ", ".join(f"{k}={env.get(k)}" for k in ("SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_STEP"))
        raise SweepError(f"SLURM_ARRAY_TASK_ID={task}: not on the array's range ({found}); "
                         f"set LSM_STUDY_RUN_INDEX / LSM_STUDY_NUM_RUNS or --run-index / --num-runs")
    return offset // step


def select_runs(runs: list[Run], run_index: int | None, num_runs: int | None) -> list[Run]:
    """This process's share: runs i, i+n, i+2n, ... (from the flags, else the environment: LSM_STUDY_*,
    else a SLURM job array, whose task IDs may start at any number, e.g. `--array=1-4`)."""
    env = os.environ
    if run_index is None:
        if "LSM_STUDY_RUN_INDEX" in env:
            run_index = int(env["LSM_STUDY_RUN_INDEX"])
        else:
            slurm = slurm_array_index(env)
            run_index = 0 if slurm is None else slurm
    if num_runs is None:
        num_runs = int(env.get("LSM_STUDY_NUM_RUNS", env.get("SLURM_ARRAY_TASK_COUNT", 1)))
    if num_runs < 1 or not 0 <= run_index < num_runs:
        raise SweepError(f"--run-index {run_index} --num-runs {num_runs}: need 0 ≤ index < num-runs")
    return [r for r in runs if r.index % num_runs == run_index]


def final_loss(run_dir: Path) -> float:
    """The last logged training loss (the mean over the last `log_every` steps)."""
    from lsm_jax.training.reporting import read_history
    losses = [r["train/loss"] for r in read_history(run_dir) if r.get("train/loss") is not None]
    return float(losses[-1]) if losses else math.nan


def score_run(run: Run, config: ml_collections.ConfigDict, summary: dict | None) -> dict[str, Any]:
    """The run's result from its own final validation (export/latest/train_info.json)."""
    from lsm_jax.training.checkpointing import read_export_info
    info = read_export_info(run.directory / "export" / "latest") or {}
    if info.get("step") != config.total_steps:
        raise RuntimeError(f"{run.directory}: export/latest is from step {info.get('step')}, "
                           f"not the final step {config.total_steps}")
    metrics = {k: v for k, v in info.items() if "/" in k}
    out = dict(label=run.setting.label, overrides=dict(run.setting.overrides), seed=run.seed,
               config_seed=int(config.seed), status="done", step=info["step"], metrics=metrics,
               final_loss=final_loss(run.directory), versions=versions())
    if summary and summary["final_step"] > summary["start_step"]:
        out.update(train_s=round(summary["train_s"], 2), compile_s=round(summary["compile_s"], 2),
                   step_s=round(summary["step_s"], 4), resumed_from=summary["start_step"])
    return out


def run_study(spec: dict[str, Any], sweep: Sweep, workdir: str | os.PathLike, *, run_index: int | None = None,
              num_runs: int | None = None, train: Callable | None = None) -> dict[str, Any]:
    """Runs this process's share of the study; returns {'done', 'skipped', 'failed', 'stopped'} counts.

    `train(config, workdir) -> summary` defaults to `lsm_jax.training.loop.train_and_evaluate`.
    """
    from lsm_jax.runtime import compile_cache
    from lsm_jax.training import loop
    train = train or loop.train_and_evaluate
    workdir = Path(workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    stored = workdir / STUDY_FILE
    if stored.is_file():
        old = json.loads(stored.read_text())
        runs_part = lambda d: {k: v for k, v in d.items() if k != "baseline"}  # noqa: E731 - not what is run
        if runs_part(old) != runs_part(spec):
            diff = ", ".join(f"{k}: {old.get(k)!r} there, {spec[k]!r} here" for k in spec if old.get(k) != spec[k])
            raise SweepError(f"--workdir {workdir}: holds a different study ({diff}); use another --workdir")
        if old != spec:   # only the declared baseline changed: the runs stay valid
            write_json(stored, spec)
    else:
        write_json(stored, spec)
    compile_cache.configure()   # the runs share programs (same shapes): each compiles once
    runs = select_runs(runs_of(workdir, sweep), run_index, num_runs)
    counts = dict(done=0, skipped=0, failed=0, stopped=False)
    for n, run in enumerate(runs, 1):
        if (run.directory / RESULT_FILE).is_file():
            counts["skipped"] += 1
            continue
        config = run_config(spec, run)
        run.directory.mkdir(parents=True, exist_ok=True)
        write_json(run.directory / RUN_FILE, dict(label=run.setting.label, overrides=dict(run.setting.overrides),
                                                 seed=run.seed, config_seed=int(config.seed)))
        log.info("run %d/%d: %s seed %d -> %s", n, len(runs), run.setting.label, run.seed, run.directory)
        try:
            summary = train(config, run.directory)
        except loop.NonFiniteLossError as err:
            write_json(run.directory / RESULT_FILE, dict(label=run.setting.label, seed=run.seed,
                                                         overrides=dict(run.setting.overrides),
                                                         status="non-finite", error=str(err), metrics={}))
            counts["failed"] += 1
            continue
        if summary.get("preempted"):
            counts["stopped"] = True
            log.info("stopped; run the same command to resume")
            break
        result = score_run(run, config, summary)
        write_json(run.directory / RESULT_FILE, result)
        log.info("run %s seed %d: %s, final loss %.4g", run.setting.label, run.seed,
                 ", ".join(f"{k} {v:.4f}" for k, v in result["metrics"].items()), result["final_loss"])
        counts["done"] += 1
    return counts
