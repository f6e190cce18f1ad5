"""The training step and everything it is built from: config checks, the forward in training mode,
the pure step (L1 loss, AdamW, EMA), and `build`, which jits it with in/out shardings and donation.

The step is a pure function of (TrainState, batch) jitted with in/out shardings taken from the
parameters' logical axis names (`lsm_jax.training.sharding`) and the state buffers donated.
"""

from __future__ import annotations

import contextlib
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P

from lsm_jax.model import activation_axes
from lsm_jax.model.network import LSM
from lsm_jax.model.semantics import resolve_semantics
from lsm_jax.training import lr_scaling, sharding
from lsm_jax.training.optimizer import make_optimizer
from lsm_jax.training.state import TrainState, ema_update, make_init_fn, split_model


class TrainingError(ValueError):
    """A configuration that cannot be trained (one-line message naming the option)."""


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
    if config.model.in_chans != 3:
        raise TrainingError(f"model.in_chans={config.model.in_chans}: training reads RGB images, so only 3 is "
                            "trainable (a converted 1-channel checkpoint can upscale gray images)")
    accum = int(config.get("grad_accum_steps", 1))
    if accum < 1 or config.batch_size % (shards * accum):
        raise TrainingError(f"grad_accum_steps={accum}: batch_size={config.batch_size} must be a multiple of "
                            f"{shards} batch shards × {max(accum, 1)} micro-batches")
    if accum > 1 and _cross_image(config) and (group == 0 or (config.batch_size // accum) % group):
        raise TrainingError(f"grad_accum_steps={accum} with cross-image recurrence ({config.model.semantics} "
                            f"semantics) needs recurrence_group > 0 dividing the micro-batch of "
                            f"{config.batch_size // accum}")
    if config.loss != "l1":
        raise TrainingError(f"loss={config.loss!r}: only 'l1' (the authors' loss) is implemented")
    if not 0.0 <= config.ema_decay < 1.0:
        raise TrainingError(f"ema_decay={config.ema_decay} must be in [0, 1)")
    for name in ("total_steps", "batch_size", "patch_size", "log_every"):
        if config[name] < 1:
            raise TrainingError(f"{name}={config[name]} must be ≥ 1")


def _cross_image(config: ml_collections.ConfigDict) -> bool:
    return resolve_semantics(config.model).cross_image


def activation_hook(mesh, config: ml_collections.ConfigDict) -> Callable | None:
    """The hook that pins the network's named activations (`lsm_jax.model.activation_axes`) to the
    rule table's layout, or None when off. Off under cross-image recurrence groups: those run under
    `vmap`, where the names would no longer describe the (group, image) split of the batch."""
    if not config.sharding.get("constrain_activations", True) or mesh is None:
        return None
    if _cross_image(config) and 0 < config.recurrence_group < config.batch_size:
        return None
    rules = [tuple(r) for r in config.sharding.rules]

    def hook(x, names):
        spec = sharding.logical_to_mesh(names, x.shape, mesh, rules, what="activation")
        return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))

    return hook


def split_micro_batches(x: jax.Array, k: int) -> jax.Array:
    """(B, ...) -> (k, B/k, ...): micro-batch j takes rows j, j+k, j+2k, ..., so that with B split
    over devices in contiguous blocks every micro-batch has B/(k·devices) rows on every device and
    no row moves."""
    return jnp.swapaxes(x.reshape(x.shape[0] // k, k, *x.shape[1:]), 0, 1)


def make_train_forward(graphdef: nnx.GraphDef, rest: nnx.State, config: ml_collections.ConfigDict) -> Callable:
    """forward(params, x, key) -> y in training mode. Under semantics whose recurrence crosses images
    (reference, Q1/Q6) the batch is split into independent groups of `config.recurrence_group`
    images, as the authors' per-GPU batches were; images interact only within their group."""
    group = config.recurrence_group if _cross_image(config) else 0

    def forward(params, x, key):
        run = lambda xs, k: nnx.merge(graphdef, params, rest)(xs, train=True, key=k)  # noqa: E731
        if not group or group >= x.shape[0]:
            return run(x, key)
        n = x.shape[0] // group
        ys = jax.vmap(run)(x.reshape(n, group, *x.shape[1:]), jax.random.split(key, n))
        return ys.reshape(x.shape[0], *ys.shape[2:])

    return forward


def make_loss_fn(graphdef: nnx.GraphDef, rest: nnx.State, config: ml_collections.ConfigDict, mesh=None) -> Callable:
    """loss(params, lq, gt, key) -> the mean L1 loss of one (micro-)batch in training mode. With a
    `mesh` the network's named activations are pinned to the rule table's layout, and when
    `config.model.scan.impl` is 'sharded' the forward is traced under the mesh (`set_mesh` is not
    allowed inside jit; its abstract mesh is), so the scan splits its axis over
    `config.model.scan.mesh_axis`."""
    forward = make_train_forward(graphdef, rest, config)
    hook = activation_hook(mesh, config)
    sharded_scan = mesh is not None and config.model.scan.impl == "sharded"

    def loss_fn(params, lq, gt, key):
        under_mesh = jax.sharding.use_abstract_mesh(mesh.abstract_mesh) if sharded_scan else contextlib.nullcontext()
        with activation_axes.constraining(hook), under_mesh:
            pred = forward(params, lq, key)
        return jnp.mean(jnp.abs(pred.astype(jnp.float32) - gt))

    return loss_fn


def accumulate(loss_fn: Callable, params, carry, lq, gt, key):
    """The body of the gradient-accumulation scan: `carry` (loss, grads) plus one micro-batch's."""
    loss, grads = jax.value_and_grad(loss_fn)(params, lq, gt, key)
    return jax.tree.map(jnp.add, carry, (loss, grads))


def make_train_step(graphdef: nnx.GraphDef, rest: nnx.State, tx: optax.GradientTransformation,
                    schedule: optax.Schedule, config: ml_collections.ConfigDict, mesh=None) -> Callable:
    """The pure step (state, batch) -> (state, metrics): L1 loss, AdamW update, EMA update.

    With `config.grad_accum_steps = k > 1` the batch is split into k micro-batches
    (`split_micro_batches`) whose gradients a `lax.scan` averages before the one update: the same
    mean loss and gradient as the whole batch, with 1/k of the activations alive at once. The loss
    is `make_loss_fn`'s (activation layout and sharded scan under a `mesh`)."""
    loss_fn = make_loss_fn(graphdef, rest, config, mesh)
    decay = float(config.ema_decay)
    k = int(config.get("grad_accum_steps", 1))

    def loss_and_grads(params, batch, key):
        if k == 1:
            return jax.value_and_grad(loss_fn)(params, batch["lq"], batch["gt"], key)

        def micro_step(carry, xs):
            lq, gt, j = xs
            return accumulate(loss_fn, params, carry, lq, gt, jax.random.fold_in(key, j)), None

        zero = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, params))
        xs = (split_micro_batches(batch["lq"], k), split_micro_batches(batch["gt"], k), jnp.arange(k))
        total, _ = jax.lax.scan(micro_step, zero, xs)
        return jax.tree.map(lambda t: t / k, total)

    def train_step(state: TrainState, batch: dict[str, jax.Array]):
        key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
        loss, grads = loss_and_grads(state.params, batch, key)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                                  ema_params=ema_update(state.ema_params, params, decay))
        metrics = dict(loss=loss, grad_norm=optax.tree.norm(grads), lr=schedule(state.step))
        return new_state, metrics

    return train_step


def make_micro_step(graphdef: nnx.GraphDef, rest: nnx.State, config: ml_collections.ConfigDict,
                    mesh=None) -> Callable:
    """The body of the accumulation scan (`accumulate`, the function the step's scan runs) as a
    program of its own: (params, (loss, grads), lq, gt, rng) -> (loss, grads) plus this micro-batch's.
    Used only to count FLOPs: XLA's cost analysis counts a loop body once, so a step of k
    micro-batches costs its compiled figure plus (k - 1) times this program's
    (`lsm_jax.training.throughput.step_cost`)."""
    loss_fn = make_loss_fn(graphdef, rest, config, mesh)

    def micro_step(params, carry, lq, gt, rng):
        return accumulate(loss_fn, params, carry, lq, gt, jax.random.fold_in(jax.random.wrap_key_data(rng), 0))

    return micro_step


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
    micro_step: Callable | None = None  # jitted accumulation-scan body (FLOP counting), k > 1 only
    grad_accum_steps: int = 1

    def lower_micro_step(self, batch):
        """The lowered accumulation-scan body for the micro-batch of `batch` (abstract or concrete
        arrays; only their shapes are read), or None when the step does not accumulate."""
        if self.micro_step is None:
            return None
        k = self.grad_accum_steps
        micro = {name: jax.ShapeDtypeStruct((x.shape[0] // k, *x.shape[1:]), x.dtype, sharding=self.batch_sharding)
                 for name, x in batch.items()}
        params = jax.tree.map(lambda x, sh: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sh),
                              self.abstract_state.params, self.state_shardings.params)
        rng = jax.ShapeDtypeStruct(self.abstract_state.rng.shape, self.abstract_state.rng.dtype,
                                   sharding=self.state_shardings.rng)
        carry = (jax.ShapeDtypeStruct((), jnp.float32, sharding=self.replicated), params)
        return self.micro_step.lower(params, carry, micro["lq"], micro["gt"], rng)


def build(config: ml_collections.ConfigDict, mesh) -> Parts:
    """Model structure, optimizer, shardings and the jitted init and step functions."""
    rules = [tuple(r) for r in config.sharding.rules]
    model_fn = lambda: LSM(config.model, rngs=nnx.Rngs(config.seed))  # noqa: E731
    graphdef, _, abstract_rest = split_model(nnx.eval_shape(model_fn))
    tx, schedule = make_optimizer(lr_scaling.scale_optim(config.optim, int(config.batch_size)))
    init_fn = make_init_fn(model_fn, tx, config.seed)
    abstract_state = jax.eval_shape(init_fn)
    state_sh = sharding.tree_shardings(abstract_state, mesh, rules, config.sharding.min_size_to_shard)
    replicated = NamedSharding(mesh, P())
    rest = abstract_rest
    if jax.tree.leaves(abstract_rest):  # non-parameter model state (none in LSM today)
        rest = jax.jit(lambda: split_model(model_fn())[2], out_shardings=replicated)()
    batch_sh = sharding.batch_sharding(mesh, 4, rules)
    step = jax.jit(make_train_step(graphdef, rest, tx, schedule, config, mesh),
                   in_shardings=(state_sh, {"lq": batch_sh, "gt": batch_sh}),
                   out_shardings=(state_sh, replicated), donate_argnums=0)
    k = int(config.get("grad_accum_steps", 1))
    micro = None
    if k > 1:
        micro = jax.jit(make_micro_step(graphdef, rest, config, mesh),
                        in_shardings=(state_sh.params, (replicated, state_sh.params), batch_sh, batch_sh, state_sh.rng),
                        out_shardings=(replicated, state_sh.params))
    return Parts(graphdef, rest, abstract_state, state_sh, batch_sh, replicated,
                 jax.jit(init_fn, out_shardings=state_sh), step, schedule, micro, k)
