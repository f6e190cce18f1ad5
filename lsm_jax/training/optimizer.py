"""The authors' optimiser (spec §8): AdamW with linear warmup and a MultiStep learning rate, plus
the LRU paper's parameter groups for ablations (`optim.lru_lr_factor`, `optim.freeze`)."""

from __future__ import annotations

from typing import Any, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import optax

# The LRU's eigenvalue parameters (ν, θ) and its input normalisation (γ), as the LRU paper groups
# them: a learning-rate factor and no weight decay.
LRU_PARAMS = ("nu_log", "theta_log", "gamma_log")
ALIASES = {"nu": "nu_log", "theta": "theta_log", "gamma": "gamma_log"}


def warmup_multistep(base_lr: float, warmup_steps: int, milestones: Sequence[int],
                     gamma: float = 0.5) -> optax.Schedule:
    """BasicSR's `MultiStepRestartLR` with its linear warmup, indexed by the optimizer step s ≥ 0.

    BasicSR runs iteration i = s + 1 with lr = base·i / warmup while i < warmup, and afterwards
    base·γ^k, k = the number of milestones m ≤ s (the scheduler has stepped s times by then).
    Milestones beyond the run length simply never fire, as in the authors' scratch recipes.
    """
    bounds = jnp.asarray(sorted(int(m) for m in milestones) or [2**31 - 1], jnp.int32)

    def schedule(step):
        step = jnp.asarray(step, jnp.int32)
        decayed = base_lr * jnp.power(gamma, jnp.sum(step >= bounds)).astype(jnp.float32)
        if warmup_steps <= 0:
            return decayed
        warm = base_lr * (step + 1).astype(jnp.float32) / warmup_steps
        return jnp.where(step + 1 < warmup_steps, warm, decayed)

    return schedule


def frozen_names(cfg: ml_collections.ConfigDict) -> frozenset[str]:
    """The parameter leaf names `optim.freeze` names (aliases nu/theta/gamma resolved)."""
    return frozenset(ALIASES.get(n, n) for n in cfg.get("freeze", ()) or ())


def param_labels(params: Any, cfg: ml_collections.ConfigDict) -> Any:
    """Per leaf: 'frozen' (named in optim.freeze), 'lru' (ν, θ, γ) or 'default', by the leaf's name.

    Raises ValueError naming optim.freeze when it names a parameter the model does not have.
    """
    frozen = frozen_names(cfg)

    def name(path) -> str:
        keys = [k.key for k in path if isinstance(k, jax.tree_util.DictKey)]
        return str(keys[-1]) if keys else ""

    names = {name(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]}
    unknown = sorted(frozen - names)
    if unknown:
        raise ValueError(f"optim.freeze: no parameter named {', '.join(map(repr, unknown))} (LRU: nu, theta, "
                         f"gamma; or any parameter name such as B_re, D, embedding)")
    return jax.tree_util.tree_map_with_path(
        lambda p, _: "frozen" if name(p) in frozen else "lru" if name(p) in LRU_PARAMS else "default", params)


def make_optimizer(cfg: ml_collections.ConfigDict) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """AdamW(b1, b2, eps, weight_decay) over the config's schedule; returns (optimizer, schedule).

    With `lru_lr_factor` ≠ 1 or a non-empty `freeze`, the parameters are split into groups
    (`optax.multi_transform`): ν, θ, γ get lr × lru_lr_factor and no weight decay; frozen ones
    get no update at all. The defaults build the plain AdamW, so today's runs are unchanged.
    """
    if cfg.name != "adamw":
        raise ValueError(f"optim.name: only 'adamw' is implemented, got {cfg.name!r}")
    if cfg.schedule == "warmup_multistep":
        schedule = warmup_multistep(cfg.lr, cfg.warmup_steps, cfg.milestones, cfg.gamma)
    elif cfg.schedule == "warmup_cosine":
        schedule = optax.warmup_cosine_decay_schedule(0.0, cfg.lr, max(cfg.warmup_steps, 1),
                                                      cfg.decay_steps, cfg.lr * cfg.final_lr_ratio)
    else:
        raise ValueError(f"optim.schedule must be 'warmup_multistep' or 'warmup_cosine', got {cfg.schedule!r}")
    factor = float(cfg.get("lru_lr_factor", 1.0))
    if factor <= 0:
        raise ValueError(f"optim.lru_lr_factor must be > 0, got {factor} (freeze with optim.freeze instead)")
    adamw = lambda lr, wd: optax.adamw(lr, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=wd)  # noqa: E731
    if factor == 1.0 and not frozen_names(cfg):
        tx = adamw(schedule, cfg.weight_decay)
    else:
        lru_schedule = schedule if factor == 1.0 else (lambda step: schedule(step) * factor)
        tx = optax.multi_transform(
            {"default": adamw(schedule, cfg.weight_decay), "lru": adamw(lru_schedule, 0.0),
             "frozen": optax.set_to_zero()},
            lambda params: param_labels(params, cfg))
    if cfg.grad_clip_norm:
        tx = optax.chain(optax.clip_by_global_norm(cfg.grad_clip_norm), tx)
    return tx, schedule
