"""Logical axis names of the network's main activations and the hook that pins their layout.

The network calls `constrain(x, TOKENS)` between blocks (and `IMAGE` on feature maps). Outside a
training step it does nothing. The step installs a function (`constraining`) that maps the logical
names through the sharding rule table onto the mesh and applies `with_sharding_constraint`, so XLA
cannot silently reshard the activations (the idea of maxtext's `with_logical_constraint`).
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, Iterator, Sequence

import jax

TOKENS = ("activation_batch", "activation_length", "activation_embed")                       # (B, L, C)
IMAGE = ("activation_batch", "activation_height", "activation_width", "activation_embed")    # (B, H, W, C)

_HOOK: contextvars.ContextVar[Callable | None] = contextvars.ContextVar("lsm_activation_hook", default=None)


def constrain(x: jax.Array, names: Sequence[str]) -> jax.Array:
    """`x` laid out as the installed rules say for `names`; `x` unchanged when none are installed."""
    hook = _HOOK.get()
    return x if hook is None else hook(x, tuple(names))


@contextlib.contextmanager
def constraining(hook: Callable[[jax.Array, tuple[str, ...]], jax.Array] | None) -> Iterator[None]:
    """Installs `hook(x, names) -> x` for code traced inside the block (None: no constraints)."""
    token = _HOOK.set(hook)
    try:
        yield
    finally:
        _HOOK.reset(token)
