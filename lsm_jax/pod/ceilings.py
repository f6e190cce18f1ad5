"""The roofline's two ceilings for one device: peak FLOP/s and memory bandwidth, and where they come
from. A TPU device's are the chip's published figures (`lsm_jax.runtime.chips`, shared by the devices
of a chip); this CPU's are measured on the spot (`lsm_jax.pod.cpu_trace.ceilings`)."""

from __future__ import annotations

import dataclasses

from lsm_jax.runtime import chips

@dataclasses.dataclass
class Ceiling:
    """The roofline's two ceilings for one device, and where they come from."""
    device: str
    peak_flops: float
    bandwidth: float
    note: str


def tpu_ceiling(devices: list) -> Ceiling:
    """One device's share of its chip's published bf16 peak and HBM bandwidth (a v4 TensorCore: half)."""
    per_chip = chips.devices_per_chip(devices)
    chip = chips.chip_of(devices[0].device_kind)
    if chip is None:
        raise ValueError(f"no chip facts for {devices[0].device_kind!r} (lsm_jax.runtime.chips)")
    dev = chip.per_device(per_chip)
    return Ceiling(devices[0].device_kind, dev.bf16_flops, dev.hbm_bw,
                   f"{chip.name} per device ({per_chip} per chip): {dev.bf16_flops / 1e12:.0f} TFLOP/s bf16, "
                   f"{dev.hbm_bw / 1e9:.0f} GB/s HBM (published figures)")


def cpu_ceiling(peak_flops: float | None = None, bandwidth: float | None = None) -> Ceiling:
    """This CPU's ceilings, measured now (`cpu_trace.ceilings`) unless given. The bandwidth is the
    cache-resident one: the training step's arrays (a few MiB each for the tiny model) mostly stay in
    the last-level cache, and a roofline takes the highest rate an op can reach."""
    if peak_flops is not None and bandwidth is not None:
        return Ceiling("cpu", peak_flops, bandwidth, f"this CPU (given): {peak_flops / 1e9:.0f} GFLOP/s, "
                       f"{bandwidth / 1e9:.1f} GB/s")
    from lsm_jax.pod import cpu_trace
    flops, cache_bw, dram_bw = cpu_trace.ceilings()
    peak_flops, bandwidth = peak_flops or flops, bandwidth or cache_bw
    return Ceiling("cpu", peak_flops, bandwidth,
                   f"this CPU, measured now (best of 5): {peak_flops / 1e9:.0f} GFLOP/s (1024³ float32 matmul), "
                   f"{bandwidth / 1e9:.1f} GB/s (elementwise pass over 8 MiB, in cache; "
                   f"{dram_bw / 1e9:.1f} GB/s over 128 MiB, from DRAM)")
