"""The training state: parameters, their EMA, the optimizer state, the step and the RNG.

The model is split once into a static `graphdef` and its `nnx.Param` state; everything the step
function touches is a plain pytree, so it can be jitted with shardings, donated and checkpointed.
Non-parameter model state (there is none in LSM today) would travel in `rest`, replicated.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx, struct



@struct.dataclass
class TrainState:
    """Everything a step reads and writes. `rng` is raw uint32 key data (checkpointable)."""
    step: jax.Array
    params: nnx.State
    ema_params: nnx.State
    opt_state: optax.OptState
    rng: jax.Array


def split_model(model: nnx.Module) -> tuple[nnx.GraphDef, nnx.State, nnx.State]:
    """(graphdef, params, rest): the static structure, the trainable Params, any other state."""
    return nnx.split(model, nnx.Param, ...)


def init_state(params: nnx.State, tx: optax.GradientTransformation, seed: int) -> TrainState:
    """A fresh state at step 0 whose EMA starts as a copy of the parameters (as BasicSR's)."""
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        ema_params=jax.tree.map(jnp.array, params),
        opt_state=tx.init(params),
        rng=jax.random.key_data(jax.random.key(seed)),
    )


def ema_update(ema: nnx.State, params: nnx.State, decay: float) -> nnx.State:
    """ema ← decay·ema + (1 − decay)·params, for the parameters only (BasicSR `model_ema`)."""
    return jax.tree.map(lambda e, p: e * decay + p * (1.0 - decay), ema, params)


def _flat(state: nnx.State) -> dict[tuple, Any]:
    return {tuple(str(k) for k in path): v for path, v in nnx.to_flat_state(state)}


def _path_str(path: tuple) -> str:
    return "/".join(path)


def merge_pretrained(params: nnx.State, pretrained: nnx.State, *, strict: bool,
                     source: str = "pretrained") -> tuple[nnx.State, list[str]]:
    """Loads `pretrained` into `params` leaf by leaf; returns (params, report lines).

    Strict: every leaf must exist with the same shape, and nothing may be left over. Non-strict
    (the authors' x3/x4 finetunes): a leaf whose path is missing or whose shape differs keeps its
    fresh initialisation and is reported, e.g. the upsampler when the scale changes.
    """
    new_flat = nnx.to_flat_state(params)
    old = _flat(pretrained)
    report, used = [], set()
    leaves = []
    for path, var in new_flat:
        key = tuple(str(k) for k in path)
        name = _path_str(key)
        src = old.get(key)
        src_value = src[...] if isinstance(src, nnx.Variable) else src
        if src is None:
            report.append(f"re-initialised {name} {tuple(var.shape)}: not in {source}")
            leaves.append((path, var))
        elif tuple(src_value.shape) != tuple(var.shape):
            report.append(f"re-initialised {name}: shape {tuple(src_value.shape)} in {source}, "
                          f"{tuple(var.shape)} here")
            leaves.append((path, var))
            used.add(key)
        else:
            leaves.append((path, var.replace(jnp.asarray(src_value, var.dtype))))
            used.add(key)
    unused = sorted(_path_str(k) for k in old if k not in used)
    report += [f"unused {name} from {source}" for name in unused]
    if strict and report:
        raise ValueError(f"strict loading from {source} failed:\n  " + "\n  ".join(report))
    return nnx.from_flat_state(leaves), report


def abstract_like(tree: Any, shardings: Any) -> Any:
    """ShapeDtypeStructs with shardings: the target orbax restores into, without allocating."""
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def make_init_fn(graphdef_fn: Callable[[], nnx.Module], tx: optax.GradientTransformation,
                 seed: int) -> Callable[[], TrainState]:
    """A function that builds the model and its fresh TrainState: jit it with out_shardings so
    every parameter is created directly in its shards (nothing whole on one device first)."""

    def init():
        _, params, _ = split_model(graphdef_fn())
        return init_state(params, tx, seed)

    return init


def count_params(params: nnx.State) -> int:
    """Number of scalars in a parameter state."""
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))
