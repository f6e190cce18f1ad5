"""The authors' optimiser (spec §8): AdamW with linear warmup and a MultiStep learning rate."""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
import ml_collections
import optax


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


def make_optimizer(cfg: ml_collections.ConfigDict) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """AdamW(b1, b2, eps, weight_decay) over the config's schedule; returns (optimizer, schedule)."""
    if cfg.name != "adamw":
        raise ValueError(f"optim.name: only 'adamw' is implemented, got {cfg.name!r}")
    if cfg.schedule == "warmup_multistep":
        schedule = warmup_multistep(cfg.lr, cfg.warmup_steps, cfg.milestones, cfg.gamma)
    elif cfg.schedule == "warmup_cosine":
        schedule = optax.warmup_cosine_decay_schedule(0.0, cfg.lr, max(cfg.warmup_steps, 1),
                                                      cfg.decay_steps, cfg.lr * cfg.final_lr_ratio)
    else:
        raise ValueError(f"optim.schedule must be 'warmup_multistep' or 'warmup_cosine', got {cfg.schedule!r}")
    tx = optax.adamw(schedule, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps, weight_decay=cfg.weight_decay)
    if cfg.grad_clip_norm:
        tx = optax.chain(optax.clip_by_global_norm(cfg.grad_clip_norm), tx)
    return tx, schedule
