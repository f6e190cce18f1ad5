"""Accelerator facts: HBM, peak FLOP/s and HBM bandwidth per chip, each with its source.

Used by `pod_plan` (memory headroom, model-FLOPs utilisation) and by the training loop (MFU in the
logs). Figures are per *chip*; a JAX device can be a whole chip (v5e, v5p, v6e: megacore or one
TensorCore) or one TensorCore of a chip (v4 as libtpu's topology description lists it: 8 devices for
the 4 chips of a v4-8). `per_device` divides by the devices per chip, which the caller reads from
the topology, never assumes.

Peak float32 FLOP/s: no TPU generation has a published float32 matrix peak. XLA's default precision
runs float32 matmuls as bfloat16 passes on the MXU, so the MFU here is always against the bfloat16
peak (as maxtext and levanter report it); `f32_flops` is None for TPUs.
"""

from __future__ import annotations

import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class Chip:
    """Published figures for one accelerator chip."""
    name: str
    hbm_bytes: float          # HBM capacity per chip, in bytes (published in GiB: n * GiB)
    bf16_flops: float         # peak dense bfloat16 FLOP/s per chip
    f32_flops: float | None   # peak dense float32 FLOP/s per chip, where published
    hbm_bw: float             # HBM bandwidth, bytes/s per chip
    source: str

    def per_device(self, devices_per_chip: int) -> "Chip":
        """The share of one JAX device (a TensorCore when a chip shows up as several devices)."""
        d = max(int(devices_per_chip), 1)
        return dataclasses.replace(self, hbm_bytes=self.hbm_bytes / d, bf16_flops=self.bf16_flops / d,
                                   f32_flops=None if self.f32_flops is None else self.f32_flops / d,
                                   hbm_bw=self.hbm_bw / d)


GB, GiB = 1e9, 2.0**30   # GB: bandwidths (decimal, as published); GiB: HBM capacities
_CLOUD = "https://cloud.google.com/tpu/docs/"

# device_kind as JAX reports it -> facts. HBM capacities are binary (GiB) sizes, whatever the label on
# Google's pages ("16 GB" for v5e, "95GB" for v5p, "32 GB" for v6e; "32 GiB" for v4): libtpu's compiler
# lets one v5e device use 15.75 GiB, more than 16e9 bytes (14.9 GiB). v5p is recorded at the 95.73 GiB
# its compiler allows (its page's "95GB" would be below that). The compiler's own limit per device
# (COMPILER_HBM_GIB_PER_DEVICE) is what decides whether a program fits.
CHIPS: dict[str, Chip] = {
    "TPU v4": Chip("TPU v4", 32 * GiB, 275e12, None, 1200 * GB, _CLOUD + "v4 (per chip: 275 TFLOP/s bf16, "
                   "32 GiB HBM2, 1200 GB/s; 2 TensorCores, run by JAX as one megacore device)"),
    "TPU v5 lite": Chip("TPU v5e", 16 * GiB, 197e12, None, 819 * GB, _CLOUD + "v5e (per chip: 197 TFLOP/s "
                        "bf16, 16 GiB HBM2 (the page: '16 GB'), 819 GB/s; 1 TensorCore)"),
    "TPU v5": Chip("TPU v5p", 95.73 * GiB, 459e12, None, 2765 * GB, _CLOUD + "v5p (per chip: 459 TFLOP/s "
                   "bf16, '95GB' HBM2e (95.73 GiB usable per the compiler), 2765 GB/s; 2 TensorCores as one "
                   "megacore device)"),
    "TPU v6 lite": Chip("TPU v6e", 32 * GiB, 918e12, None, 1640 * GB, _CLOUD + "v6e (per chip: 918 TFLOP/s "
                        "bf16, 32 GiB HBM (the page: '32 GB'), 1640 GB/s)"),
    # The GPU anchor of the performance notes (not a compile target here); NVIDIA's "80 GB".
    "NVIDIA H100 80GB HBM3": Chip("H100 SXM", 80 * GB, 989e12, 67e12, 3350 * GB,
                                  "https://www.nvidia.com/en-us/data-center/h100/ (SXM, dense: 989 TFLOP/s "
                                  "bf16, 67 TFLOP/s fp32, 80 GB, 3.35 TB/s)"),
}


# The HBM one device may use, in GiB, as libtpu 0.0.52's compiler states it in its out-of-memory
# message ("exceeds available HBM (15.75G)"; its G is GiB: 1024-based), measured with `pod_plan` on
# v4:2x2x1, v5e:2x2, v5p:2x2x1 and v6e:2x2. This, not the published capacity, decides whether a
# program fits. A v4 device here is one TensorCore (half a chip: libtpu's topology description lists
# a v4 chip's two cores as two devices, while JAX on a real v4 runs each chip as one megacore device).
COMPILER_HBM_GIB_PER_DEVICE: dict[str, float] = {
    "TPU v4": 15.25, "TPU v5 lite": 15.75, "TPU v5": 95.73, "TPU v6 lite": 31.24,
}


def usable_hbm_bytes(device_kind: str, devices_per_chip: int = 1) -> float | None:
    """HBM per device the compiler allows (measured), else the published capacity's share; None if unknown."""
    if device_kind in COMPILER_HBM_GIB_PER_DEVICE:
        return COMPILER_HBM_GIB_PER_DEVICE[device_kind] * GiB
    chip = chip_of(device_kind)
    return None if chip is None else chip.per_device(devices_per_chip).hbm_bytes


def chip_of(device_kind: str) -> Chip | None:
    """The facts for a JAX `device_kind` ('TPU v5 lite', ...), or None when unknown (CPU)."""
    return CHIPS.get(device_kind)


def topology_chips(topology: str) -> int:
    """Chips in a libtpu topology name: the product of its dimensions ('v5e:4x4' -> 16)."""
    try:
        dims = topology.split(":", 1)[1]
        return math.prod(int(d) for d in dims.lower().split("x"))
    except (IndexError, ValueError):
        raise ValueError(f"topology {topology!r}: expected '<chip>:<dims>', e.g. 'v5e:4x4' or 'v4:2x2x1'") from None


def peak_flops_per_device(device_kind: str, devices_per_chip: int = 1) -> float | None:
    """Peak bf16 FLOP/s of one JAX device of this kind, or None when the chip is not in the table."""
    chip = chip_of(device_kind)
    return None if chip is None else chip.per_device(devices_per_chip).bf16_flops


def devices_per_chip(devices) -> int:
    """Devices per chip among `devices` (several TensorCores of one chip share its coordinates)."""
    coords = {tuple(getattr(d, "coords", (d.id,))) for d in devices}
    return max(len(devices) // max(len(coords), 1), 1)
