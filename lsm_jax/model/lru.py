"""Linear recurrent unit with diagonal complex eigenvalues (spec §5).

The recurrence itself runs in `lsm_jax.scan.linear_recurrence`. Its axis is a parameter because the
reference scans the *batch* axis (Q1) while the paper scans the tokens; `lsm_jax.model.smu` picks it
from the semantics.

Shapes (legend in `lsm_jax.model.layers`): a sequence us (B, L, C), sorted by category, and its
modulations mk_* (B, L, N) give states h (B, L, N) complex, scanned along the batch axis (B) or the
token axis (L), and the output (B, L, C).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from lsm_jax.model.layers import param, sow
from lsm_jax.scan import linear_recurrence

# How the LRU normalises its input B·u by γ (`config.model.lru_gamma`):
#   'learned'     γ = exp(γ_log), a parameter initialised to sqrt(1 − |λ|²) (the reference, default);
#   'from_lambda' γ = sqrt(1 − |λ|²) of the current λ, through `sqrt_bounded_grad` so that the
#                 gradient stays finite as |λ| is trained towards 1 (γ_log is then unused);
#   'off'         γ = 1 (γ_log unused).
GAMMA_MODES = ("learned", "from_lambda", "off")
MAX_SQRT_GRAD = 1000.0


@jax.custom_jvp
def sqrt_bounded_grad(x: jax.Array) -> jax.Array:
    """sqrt(x) whose derivative is capped at MAX_SQRT_GRAD (it is 1/(2·sqrt(x)), unbounded at 0)."""
    return jnp.sqrt(x)


@sqrt_bounded_grad.defjvp
def _sqrt_bounded_grad_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    floor = 1.0 / (4.0 * MAX_SQRT_GRAD ** 2)   # below it, 1/(2·sqrt(x)) would exceed the cap
    return jnp.sqrt(x), dx / (2.0 * jnp.sqrt(jnp.maximum(x, floor)))


def init_lru_parameters(key: jax.Array, n: int, rmin: float, rmax: float, max_phase: float):
    """Ring initialisation: |λ|² uniform on [rmin², rmax²], phase uniform on [0, max_phase)."""
    k1, k2 = jax.random.split(key)
    u1 = jax.random.uniform(k1, (n,))
    u2 = jax.random.uniform(k2, (n,))
    nu_log = jnp.log(-0.5 * jnp.log(u1 * (rmax ** 2 - rmin ** 2) + rmin ** 2))
    theta_log = jnp.log(max_phase * u2)
    gamma_log = jnp.log(jnp.sqrt(1.0 - jnp.abs(jnp.exp(-jnp.exp(nu_log))) ** 2))
    return nu_log, theta_log, gamma_log


class LRUCore(nnx.Module):
    """The LRU of a CML block (`lru.lru_core`) with category-modulated λ, B·u and C·h (spec §5).
    Sows `lru_Bu` (x = Mk_B·γB·u), `lru_lambda_eff` (a = λ·Mk_A) and `lru_states` (h), all
    (B, L, N) complex64.

    `mk_a_scale` (`config.model.mk_a_scale`, default 1: the authors' a = λ·Mk_A, exactly) is a study
    variant beyond the paper. Mk_A is a quarter of a softmax over the T prototypes, so it is ~1/T per
    state and a = λ·Mk_A forgets within a token or two whatever λ's ring. With s ≠ 1 the decay is
    a = λ·min(s·Mk_A, 1): s = T restores |a| ≈ |λ| for an evenly spread Mk, and the clip keeps |a| ≤ |λ| < 1
    (a stable recurrence)."""

    def __init__(self, dim: int, d_state: int, *, rmin: float = 0.9, rmax: float = 0.99,
                 max_phase: float = 6.283, gamma: str = "learned", mk_a_scale: float = 1.0,
                 rngs: nnx.Rngs):
        if gamma not in GAMMA_MODES:
            raise ValueError(f"lru_gamma must be one of {GAMMA_MODES}, got {gamma!r}")
        if not mk_a_scale > 0:
            raise ValueError(f"mk_a_scale must be > 0, got {mk_a_scale!r}")
        self.gamma_mode = gamma
        self.mk_a_scale = float(mk_a_scale)
        nu_log, theta_log, gamma_log = init_lru_parameters(rngs.params(), d_state, rmin, rmax, max_phase)
        self.nu_log = param(nu_log, ('state',))
        self.theta_log = param(theta_log, ('state',))
        self.gamma_log = param(gamma_log, ('state',))
        normal = lambda shape, std: std * jax.random.normal(rngs.params(), shape)
        self.B_re = param(normal((d_state, dim), 1 / math.sqrt(2 * dim)), ('state', 'embed'))
        self.B_im = param(normal((d_state, dim), 1 / math.sqrt(2 * dim)), ('state', 'embed'))
        self.C_re = param(normal((dim, d_state), 1 / math.sqrt(d_state)), ('embed', 'state'))
        self.C_im = param(normal((dim, d_state), 1 / math.sqrt(d_state)), ('embed', 'state'))
        self.D = param(normal((dim, dim), 1 / math.sqrt(dim)), ('embed', 'embed'))

    def eigenvalues(self) -> jax.Array:
        """λ (N,) complex64."""
        modulus = jnp.exp(-jnp.exp(self.nu_log[...]))
        phase = jnp.exp(self.theta_log[...])
        return jax.lax.complex(modulus * jnp.cos(phase), modulus * jnp.sin(phase))

    def input_gamma(self) -> jax.Array:
        """γ (N,) float32, the normalisation of B·u, as `gamma_mode` says (see GAMMA_MODES)."""
        if self.gamma_mode == "learned":
            return jnp.exp(self.gamma_log[...])
        if self.gamma_mode == "from_lambda":
            return sqrt_bounded_grad(1.0 - jnp.exp(-2.0 * jnp.exp(self.nu_log[...])))
        return jnp.ones(self.gamma_log.shape, jnp.float32)

    def __call__(self, us: jax.Array, mk_a: jax.Array, mk_b: jax.Array, mk_cre: jax.Array,
                 mk_cim: jax.Array, *, scan_axis: int, mk_a_batch_mean: bool, scan) -> jax.Array:
        """us: (B, L, C) sequence; mk_*: (B, L, N) modulations -> ys (B, L, C). `scan_axis`: 0 (B)
        or 1 (L). `scan`: a `lsm_jax.scan.spec.ScanSpec` (strategy and options of the recurrence)."""
        us32 = us.astype(jnp.float32)
        gamma = self.input_gamma()
        bu_re = jnp.dot(us32, (gamma[:, None] * self.B_re[...]).T)       # (B, L, N)
        bu_im = jnp.dot(us32, (gamma[:, None] * self.B_im[...]).T)
        x_re, x_im = mk_b * bu_re, mk_b * bu_im

        def effective_lambda():                                               # (1 or B, L, N)
            alpha = jnp.mean(mk_a, axis=0, keepdims=True) if mk_a_batch_mean else mk_a
            if self.mk_a_scale != 1.0:   # the variant only: the default program stays the authors'
                alpha = jnp.minimum(self.mk_a_scale * alpha, 1.0)
            return self.eigenvalues() * alpha

        if us.shape[scan_axis] == 1:
            # Nothing to scan (the reference semantics at batch 1): h = x, exactly, and λ/Mk_A are
            # dead. Stay in real arithmetic; only a capture builds the complex values it records.
            h_re, h_im = x_re, x_im
            x = lambda: jax.lax.complex(x_re, x_im)  # noqa: E731
            sow(self, lru_Bu=x, lru_lambda_eff=lambda: jnp.broadcast_to(effective_lambda(), x_re.shape),
                lru_states=x)
        else:
            x = jax.lax.complex(x_re, x_im)
            a = effective_lambda()
            h = linear_recurrence(a, x, axis=scan_axis, **scan.kwargs())
            sow(self, lru_Bu=x, lru_lambda_eff=lambda: jnp.broadcast_to(a, x.shape), lru_states=h)
            h_re, h_im = jnp.real(h), jnp.imag(h)
        ys = (jnp.dot(h_re * mk_cre, self.C_re[...].T)
              - jnp.dot(h_im * mk_cim, self.C_im[...].T)
              + jnp.dot(us32, self.D[...].T))
        return ys.astype(us.dtype)
