"""The sharded strategy: the scanned axis split over the devices of one mesh axis (`shard_map`).

Axes (legend: `lsm_jax.scan.common`): a3 (1|P, 1|L, 1|Q), x3 and h (P, L, Q), h0 and h_last (P, Q);
D devices on `mesh_axis`, each holding L / D steps (L padded to a multiple of D with identity steps).

Each shard scans its piece from zero with the inner strategy, keeping its end state and Π a. The
shards all-gather these (one (P, Q) state and one (1|P, 1|Q) product per device: tiny), fold them in
scan order into each shard's carry-in, and rescan their piece from it. Only the scanned mesh axis
is manual; other mesh axes (a batch axis, say) stay under the compiler's automatic sharding. The
backward pass is the same sharded scan in reverse (`lsm_jax.scan.vjp`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from lsm_jax.scan.common import pad_identity, result_dtype


def _mesh_of(mesh):
    if mesh is None:
        mesh = jax.sharding.get_abstract_mesh()
        if mesh is None or not mesh.shape:
            raise ValueError("scan impl 'sharded' needs a mesh: pass mesh= or call under jax.set_mesh(mesh)")
    return mesh


def scan_sharded(a3: jax.Array, x3: jax.Array, h0: jax.Array | None, reverse: bool, *, inner, mesh_axis: str,
                 mesh=None):
    """a3, x3, h0 -> (h (P, L, Q), h_last (P, Q)), L split over the D devices of `mesh_axis`; `inner`, a
    `CanonicalScan`, runs on each shard's (P, L / D, Q) piece."""
    mesh = _mesh_of(mesh)
    if mesh_axis not in mesh.shape:
        raise ValueError(f"scan impl 'sharded': mesh_axis={mesh_axis!r} is not an axis of the mesh "
                         f"{dict(mesh.shape)}")
    if mesh.axis_types[mesh.axis_names.index(mesh_axis)] == jax.sharding.AxisType.Explicit:
        raise ValueError(f"scan impl 'sharded': mesh axis {mesh_axis!r} must be Auto-typed "
                         f"(jax.make_mesh(..., axis_types=(AxisType.Auto, ...)), as lsm_jax.training makes it)")
    devices = mesh.shape[mesh_axis]
    compute = result_dtype(a3, x3)
    length = x3.shape[1]
    a3, x3 = pad_identity(a3, x3, devices, at_start=reverse)
    pad = x3.shape[1] - length
    p, _, q = x3.shape
    h0 = jnp.zeros((p, q), compute) if h0 is None else h0.astype(compute)
    const_a = a3.shape[1] == 1
    local_len = x3.shape[1] // devices

    def shard(a_s, x_s, h0_s):
        _, end = inner(a_s, x_s, None, reverse)
        a_c = a_s.astype(compute)
        prod = jax.lax.integer_pow(a_c[:, 0], local_len) if const_a else jnp.prod(a_c, axis=1)
        ends = jax.lax.all_gather(end.astype(compute), mesh_axis)       # (D, P, Q)
        prods = jax.lax.all_gather(prod, mesh_axis)                     # (D, 1|P, 1|Q)
        order = range(devices - 1, -1, -1) if reverse else range(devices)
        carries, c = [None] * devices, h0_s
        for i in order:          # D is small: fold the shards in scan order
            carries[i] = c
            c = prods[i] * c + ends[i]
        carry_in = jnp.stack(carries)[jax.lax.axis_index(mesh_axis)]
        h, _ = inner(a_s, x_s, carry_in, reverse)
        return h, c

    seq = P(None, mesh_axis, None)
    h, h_last = jax.shard_map(shard, mesh=mesh, in_specs=(P() if const_a else seq, seq, P()),
                              out_specs=(seq, P()), axis_names={mesh_axis}, check_vma=False)(a3, x3, h0)
    if pad:
        h = h[:, pad:] if reverse else h[:, :length]
    return h, h_last
