"""The device mesh and the one table of rules that places parameters and batches on it.

The network names only *logical* axes on its parameters ('embed', 'mlp', ...; see
`lsm_jax.model.layers`). A rule table maps each logical name onto mesh axes:

    mesh axes   data × fsdp × model
    batch       → (data, fsdp)      every example lives on exactly one (data, fsdp) slot
    embed, feat → fsdp              large weights are split over fsdp (ZeRO-3 style)
    mlp         → model             expanded widths are split over model (tensor parallel)
    anything else → replicated

A dimension stays replicated when its logical name is unknown, when its size does not divide
the mesh axes it maps to (C = 60 on fsdp = 8), when the mesh axis is already used by an earlier
dimension of the same array (a C×C kernel named ('embed', 'embed')), or when the whole array is
smaller than `min_size_to_shard` elements (sharding a 180-float bias costs more than it saves).
"""

from __future__ import annotations

import logging
import math
from typing import Any, Iterable, Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from lsm_jax.training.axis_rules import DEFAULT_RULES, MESH_AXES  # noqa: E402,F401

log = logging.getLogger(__name__)


def mesh_shape(sizes: Sequence[int], num_devices: int) -> tuple[int, ...]:
    """Resolves one `-1` entry in the (data, fsdp, model) sizes to the remaining devices."""
    sizes = [int(s) for s in sizes]
    if len(sizes) != len(MESH_AXES):
        raise ValueError(f"mesh: expected {len(MESH_AXES)} sizes for {MESH_AXES}, got {sizes}")
    if sizes.count(-1) > 1 or any(s == 0 or s < -1 for s in sizes):
        raise ValueError(f"mesh: sizes must be positive with at most one -1, got {sizes}")
    known = math.prod(s for s in sizes if s != -1)
    if num_devices % known:
        raise ValueError(f"mesh: {dict(zip(MESH_AXES, sizes))} does not divide the {num_devices} devices")
    sizes = [num_devices // known if s == -1 else s for s in sizes]
    if math.prod(sizes) != num_devices:
        raise ValueError(f"mesh: {dict(zip(MESH_AXES, sizes))} uses {math.prod(sizes)} devices, "
                         f"but there are {num_devices}; set one size to -1 to take the rest")
    return tuple(sizes)


def make_mesh(data: int = -1, fsdp: int = 1, model: int = 1, devices: Sequence[Any] | None = None) -> Mesh:
    """A (data, fsdp, model) mesh over all devices (of every process), axes in GSPMD `Auto` mode."""
    devices = list(devices) if devices is not None else jax.devices()
    shape = mesh_shape((data, fsdp, model), len(devices))
    axis_types = (jax.sharding.AxisType.Auto,) * len(MESH_AXES)
    if _cores_listed_separately(devices):
        # jax.make_mesh's TPU layout wants one device per chip; libtpu's topology description lists
        # a v4 chip's two TensorCores as two devices. Neighbouring cores then share a chip.
        return Mesh(np.asarray(devices, dtype=object).reshape(shape), MESH_AXES, axis_types=axis_types)
    return jax.make_mesh(shape, MESH_AXES, axis_types=axis_types, devices=devices)


def _cores_listed_separately(devices: Sequence[Any]) -> bool:
    return any(getattr(d, "core_on_chip", 0) for d in devices)


def _rule_table(rules: Iterable[Sequence[Any]]) -> dict[str, tuple[str, ...]]:
    table = {}
    for name, axes in rules:
        if axes is None:
            axes = ()
        elif isinstance(axes, str):
            axes = (axes,)
        unknown = [a for a in axes if a not in MESH_AXES]
        if unknown:
            raise ValueError(f"sharding rule {name!r} -> {axes}: unknown mesh axes {unknown}; "
                             f"mesh axes are {MESH_AXES}")
        table[name] = tuple(axes)
    return table


def logical_to_mesh(names: Sequence[str | None], shape: Sequence[int], mesh: Mesh,
                    rules: Iterable[Sequence[Any]] = DEFAULT_RULES, min_size_to_shard: int = 0,
                    what: str = "array") -> P:
    """The mesh PartitionSpec of one array from its logical axis names (see the module docstring)."""
    table = _rule_table(rules)
    if len(names) != len(shape):
        raise ValueError(f"{what}: {len(names)} logical names {tuple(names)} for shape {tuple(shape)}")
    if math.prod(shape) < min_size_to_shard:
        return P()
    used: set[str] = set()
    spec = []
    for name, dim in zip(names, shape):
        axes = table.get(name, ()) if name is not None else ()
        if name is not None and name not in table:
            log.debug("%s: logical axis %r has no rule; replicated", what, name)
        axes = tuple(a for a in axes if a not in used and mesh.shape[a] > 1)
        size = math.prod(mesh.shape[a] for a in axes)
        if axes and dim % size:
            log.info("%s: dim %d (%s) does not divide mesh axes %s of size %d; replicated",
                     what, dim, name, axes, size)
            axes = ()
        used.update(axes)
        spec.append(axes[0] if len(axes) == 1 else (axes or None))
    while spec and spec[-1] is None:
        spec.pop()
    return P(*spec)


def _is_variable(x: Any) -> bool:
    return isinstance(x, nnx.Variable)


def _logical_names(v: nnx.Variable) -> tuple | None:
    meta = v.get_metadata()
    names = meta.get("out_sharding", meta.get("sharding_names", meta.get("sharding")))
    return tuple(names) if names is not None else None


def tree_shardings(tree: Any, mesh: Mesh, rules: Iterable[Sequence[Any]] = DEFAULT_RULES,
                   min_size_to_shard: int = 0) -> Any:
    """NamedShardings for a pytree of nnx Variables (parameters, optimizer moments) and arrays.

    Variables are placed by their logical names; bare arrays and scalars (step counters, RNG keys)
    are replicated. The result has the pytree structure of `tree`, ready for `jax.jit` shardings.
    """
    rules = tuple(rules)

    def place(path, x):
        where = jax.tree_util.keystr(path)
        if _is_variable(x):
            names = _logical_names(x)
            shape = x.shape
            spec = (logical_to_mesh(names, shape, mesh, rules, min_size_to_shard, where)
                    if names is not None else P())
            return x.replace(NamedSharding(mesh, spec))
        return NamedSharding(mesh, P())

    return jax.tree_util.tree_map_with_path(place, tree, is_leaf=_is_variable)


def batch_sharding(mesh: Mesh, ndim: int = 4, rules: Iterable[Sequence[Any]] = DEFAULT_RULES) -> NamedSharding:
    """The sharding of a (B, ...) batch: B split over the mesh axes of the 'batch' rule."""
    axes = tuple(a for a in _rule_table(rules).get("batch", ()) if mesh.shape[a] > 1)
    lead = axes[0] if len(axes) == 1 else (axes or None)
    return NamedSharding(mesh, P(lead, *([None] * (ndim - 1))))


def batch_shards(mesh: Mesh, rules: Iterable[Sequence[Any]] = DEFAULT_RULES) -> int:
    """How many ways the batch axis is split: the global batch must be a multiple of it."""
    return math.prod(mesh.shape[a] for a in _rule_table(rules).get("batch", ()))


def global_batch(local: dict[str, np.ndarray], mesh: Mesh,
                 rules: Iterable[Sequence[Any]] = DEFAULT_RULES) -> dict[str, jax.Array]:
    """Assembles each process's local batch into global arrays sharded over the batch axes.

    Every process passes its own `local` slice (B / process_count examples); the result is one
    logical array of B examples whose shards live on the devices that will consume them.
    """
    out = {}
    for key, value in local.items():
        value = np.asarray(value)
        sharding = batch_sharding(mesh, value.ndim, rules)
        shape = (value.shape[0] * jax.process_count(),) + value.shape[1:]
        out[key] = jax.make_array_from_process_local_data(sharding, value, shape)
    return out


def place(tree: Any, shardings: Any) -> Any:
    """Host arrays, identical on every process, as global arrays laid out by `shardings` (each
    process fills only the shards of its own devices)."""
    def one(x, s):
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, s, lambda index: x[index])
    return jax.tree.map(one, tree, shardings)


def describe(shardings: Any) -> dict[str, str]:
    """path -> PartitionSpec string, for logs and reports."""
    flat = jax.tree_util.tree_flatten_with_path(shardings, is_leaf=lambda x: isinstance(x, NamedSharding))[0]
    return {jax.tree_util.keystr(path): str(s.spec) for path, s in flat}
