"""Throughput, model-FLOPs utilisation and profiling for the training loop.

`Meter` reads the FLOPs of one step from the compiled program (`cost_analysis` of the per-device
SPMD program, times the device count) and the devices' peak from the chip table
(`lsm_jax.runtime.chips`); MFU = achieved FLOP/s per device / peak bf16 FLOP/s per device (not
reported on devices the table does not know, such as CPUs). With `model.remat` the compiled FLOPs
include the recomputation, so the figure is then the hardware-FLOPs utilisation.

Gradient accumulation: XLA's cost analysis counts the body of a loop once, whatever its trip count;
the step with `grad_accum_steps = k > 1` runs its micro-batches in a `lax.scan`, so `step_cost` adds (k - 1) times the FLOPs of the scan body compiled as a program of its own (one micro-batch's
loss and gradient, `Parts.lower_micro_step`): exact up to the few elementwise operations that
carry the scan (multiplying the whole step by k would also count the optimizer update k times).

`Profiler` writes a `jax.profiler` trace of `profile.num_steps` steps from `profile.start_step`
into `<workdir>/profile` (TensorBoard's profile plugin reads it); the loop wraps each step in a
`StepTraceAnnotation`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import jax

from lsm_jax.runtime import chips

log = logging.getLogger("lsm_jax.train")


def _cost_analysis(compiled) -> dict:
    """A compiled program's cost analysis as one dict; empty when the backend gives none."""
    try:
        cost = compiled.cost_analysis()
    except Exception:  # some backends do not implement it
        return {}
    cost = cost[0] if isinstance(cost, (list, tuple)) and cost else cost
    return cost or {}


def compiled_flops(compiled) -> float:
    """FLOPs of one call of a compiled (per-device) program; 0.0 when the backend gives none."""
    return float(_cost_analysis(compiled).get("flops", 0.0) or 0.0)


def compiled_seconds(compiled) -> float:
    """The cost model's time estimate of a compiled program (`optimal_seconds`), ≤ 0 when it has none."""
    return float(_cost_analysis(compiled).get("optimal_seconds", -1.0))


def step_cost(step_figure: float, grad_accum_steps: int = 1, micro_figure: float = 0.0) -> float:
    """One training step's figure (FLOPs or cost-model seconds) from the compiled step's and, with
    k = `grad_accum_steps` > 1, the compiled scan body's: the cost analysis counts the body of the
    step's `lax.scan` once, the step runs it k times, so the step is its figure + (k - 1) × the body's."""
    k = int(grad_accum_steps)
    if k > 1 and not micro_figure:
        raise ValueError(f"grad_accum_steps={k}: the micro-batch program's figure is needed to count the step")
    return step_figure + (k - 1) * micro_figure if k > 1 else step_figure


class Meter:
    """Turns a step time into throughput and MFU scalars for the logs. With `grad_accum_steps` = k > 1,
    `micro` is the compiled accumulation-scan body (`Parts.lower_micro_step(batch).compile()`)."""

    def __init__(self, compiled, global_batch: int, devices: list, grad_accum_steps: int = 1, micro=None):
        self.devices = len(devices)
        self.global_batch = int(global_batch)
        flops = compiled_flops(compiled)
        if int(grad_accum_steps) > 1 and flops:
            micro_flops = compiled_flops(micro) if micro is not None else 0.0
            flops = step_cost(flops, grad_accum_steps, micro_flops) if micro_flops else 0.0  # unknown, not wrong
        self.flops_per_device = flops
        self.flops_per_step = self.flops_per_device * self.devices
        self.peak = chips.peak_flops_per_device(devices[0].device_kind, chips.devices_per_chip(devices))

    def scalars(self, step_s: float) -> dict[str, float]:
        """perf/* scalars for one step time in seconds."""
        out = {"perf/step_time_s": step_s,
               "perf/images_per_s": self.global_batch / step_s,
               "perf/images_per_s_per_device": self.global_batch / step_s / self.devices}
        if self.flops_per_device:
            out["perf/flops_per_step"] = self.flops_per_step
            out["perf/tflops_per_s_per_device"] = self.flops_per_device / step_s / 1e12
            if self.peak:
                out["perf/mfu"] = self.flops_per_device / step_s / self.peak
        return out

    def describe(self) -> str:
        """The step's FLOPs and the peak they are measured against, for the start-up log."""
        flops = f"{self.flops_per_step / 1e9:.3g} GFLOP per step (compiled)" if self.flops_per_step else \
            "no FLOP count from the compiler"
        peak = f"peak {self.peak / 1e12:.0f} TFLOP/s per device" if self.peak else "no peak known for this device"
        return f"{flops}; {peak}"

    def line(self, step_s: float) -> str:
        """One human line: step time, images/s per device, TFLOP/s per device, MFU."""
        s = self.scalars(step_s)
        text = (f"{step_s * 1e3:.1f} ms/step, {s['perf/images_per_s_per_device']:.2f} images/s per device "
                f"({s['perf/images_per_s']:.1f} in all)")
        if "perf/tflops_per_s_per_device" in s:
            text += f", {s['perf/tflops_per_s_per_device']:.3g} TFLOP/s per device"
        if "perf/mfu" in s:
            text += f", MFU {s['perf/mfu']:.1%}"
        return text


class Profiler:
    """Starts a trace before step `start_step` and stops it after `num_steps` steps (off if < 0)."""

    def __init__(self, directory: Path, cfg: Any):
        self.directory = Path(directory)
        self.start = int(cfg.start_step) if cfg is not None else -1
        self.stop_at = self.start + max(int(cfg.num_steps), 1) if cfg is not None else -1
        self.active = False

    def before_step(self, step: int) -> None:
        """Called with the number of steps done so far, before running the next one."""
        if self.start >= 0 and step == self.start and not self.active:
            self.directory.mkdir(parents=True, exist_ok=True)
            jax.profiler.start_trace(str(self.directory))
            self.active = True
            log.info("profiling steps %d to %d into %s", self.start + 1, self.stop_at, self.directory)

    def after_step(self, step: int, state: Any) -> None:
        """Called after a step; ends the trace once its steps are done (waiting for them to finish)."""
        if self.active and step >= self.stop_at:
            jax.block_until_ready(state)
            self.stop()

    def stop(self) -> None:
        """Ends a running trace (also on an early exit)."""
        if self.active:
            jax.profiler.stop_trace()
            self.active = False
