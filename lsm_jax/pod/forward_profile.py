"""Where an inference forward's time goes: the same per-op profile as the training step's
(`lsm_jax.pod.profile`), for the forward `lsm-upscale` jits, at one LR size and batch.

    prof = profile_forward(config.model, "v5e:4x4", size=256)   # compiled for a TPU topology (estimates)
    prof = profile_forward(config.model, None, size=64)         # on this CPU, measured beside the estimates

Parameters are replicated and the batch is split over the devices, as `lsm_jax.pod.plan.plan_infer`
compiles it for the plan table. The forward is all of inference and a part of every training step:
its categories say which ops a faster forward must shrink.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lsm_jax.pod.ceilings import Ceiling
from lsm_jax.pod.profile import Profile, measure, profile_target


def profile_forward(net_cfg, topology: str | None = None, size: int = 64, batch: int = 0, *,
                    measure_cpu: bool = True, steps: int = 3, ceiling: Ceiling | None = None,
                    program: str = "") -> Profile:
    """The profile of the inference forward of `net_cfg` (a network config, e.g. `config.model`) on a
    batch of size×size LR images (`batch` 0: one per device), compiled for `topology` through libtpu
    (estimates only) or, with topology=None, on this CPU, where `measure_cpu` also runs `steps` traced
    forwards and fills the measured columns."""
    from jax.sharding import NamedSharding, PartitionSpec as P

    from lsm_jax.pod import plan
    from lsm_jax.training import sharding
    devices = plan.topology_devices(topology) if topology is not None else jax.devices("cpu")[:1]
    batch = int(batch) or len(devices)
    if size < 1 or batch < 1 or batch % len(devices):
        raise ValueError(f"--infer {size} with batch {batch}: the size must be ≥ 1 and the batch a multiple of the "
                         f"{len(devices)} devices")
    mesh = sharding.make_mesh(-1, 1, 1, devices=devices)
    _, abstract, fwd = plan.make_infer_fn(net_cfg)
    replicated = NamedSharding(mesh, P())
    split = sharding.batch_sharding(mesh, 4)
    params = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), abstract)
    shape = (batch, size, size, int(net_cfg.in_chans))
    compiled = jax.jit(fwd).lower(params, jax.ShapeDtypeStruct(shape, jnp.float32, sharding=split)).compile()
    program = program or f"forward x{net_cfg.upscale} {size}² batch {batch} {net_cfg.dtype}"
    prof = profile_target(compiled, program, topology, devices, batch, ceiling)
    if topology is None and measure_cpu:
        from flax import nnx

        from lsm_jax.model.network import LSM
        values = jax.device_put(nnx.state(LSM(net_cfg, rngs=nnx.Rngs(0))), replicated)
        x = jax.device_put(jax.random.uniform(jax.random.key(0), shape, jnp.float32), split)

        def run():
            jax.block_until_ready(compiled(values, x))
        run()  # warm-up: first-call allocations out of the trace
        measure(prof, run, steps)
    return prof
