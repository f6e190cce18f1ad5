"""The largest per-chip batch that fits (`pod_plan --fit`): a search that compiles `train`'s step at
batches extrapolated from the compiler's memory figures, until the largest fitting and the smallest failing
batch are one step apart."""

from __future__ import annotations

import logging
import math
from typing import Sequence

from lsm_jax.pod import plan
from lsm_jax.pod.plan_config import combination_config
from lsm_jax.pod.tables import brief

log = logging.getLogger("lsm_jax.pod_plan")


def fit_largest(spec: str, topology: str, mesh, dtype: str, remat: bool, accum: int, rows: list[plan.PlanRow],
                overrides: Sequence[str] = (), max_compiles: int = 8) -> list[plan.PlanRow]:
    """Rows searching the largest per-chip batch that fits, from the fitting rows already compiled (`rows`:
    the combination's rows, at least two of which must fit) of config `spec` with `--config.KEY=VALUE`
    `overrides`.

    The compiler's memory at the two largest fitting batches is extrapolated linearly to the HBM. While
    no batch has failed, the search extrapolates upwards from the largest fitting one; once one fails,
    it steps down by the estimated excess, then bisects between the largest fitting and the smallest
    failing batch until they are one step (devices × micro-batches) apart. The largest fitting row's
    note says 'largest-fit search: the largest fit'; every row of the search says 'largest-fit search'."""
    ok = sorted((r for r in rows if r.status == "ok" and r.total_gib is not None), key=lambda r: r.global_batch)
    if len(ok) < 2 or ok[-1].hbm_gib is None:
        return []
    a, b = ok[-2], ok[-1]
    hbm = b.hbm_gib
    quantum = b.devices * accum  # every device gets whole micro-batches (a model axis > 1 needs fewer)
    points = {r.global_batch: r.total_gib for r in ok}  # fitting batch -> GiB per device
    slope = (b.total_gib - a.total_gib) / (b.global_batch - a.global_batch)  # GiB per example of the global batch
    seed, lo, hi = b.global_batch, b.global_batch, None
    down = lambda x: x // quantum * quantum  # noqa: E731

    def upward() -> int:  # extrapolate from the two largest fitting batches; at least one step up
        x0, x1 = sorted(points)[-2:]
        s = (points[x1] - points[x0]) / (x1 - x0)
        return max(down(x1 + int((hbm - points[x1]) / s)) if s > 0 else 2 * x1, x1 + quantum)

    guess = upward()
    out = []
    for _ in range(max_compiles):
        if guess <= lo or (hi is not None and guess >= hi):
            break
        row = plan.plan_train(combination_config(spec, guess, dtype, remat, accum, overrides), topology, mesh)
        row.reason = (row.reason + "; " if row.reason else "") + "largest-fit search"
        out.append(row)
        log.info("%s", brief(row))
        if row.status == "ok" and row.total_gib is not None:
            lo, points[guess] = guess, row.total_gib
        elif row.status == "ok":
            lo = guess
        else:
            hi = guess if hi is None else min(hi, guess)
        if hi is None:
            guess = upward()
        elif hi - lo <= quantum:
            break
        elif lo == seed:  # nothing above the seed fits yet: step down by the estimated excess
            over = (row.total_gib or hbm * 1.1) - hbm if row.status != "ok" else 0.0
            step = int(math.ceil(over / slope * 1.05)) if slope > 0 and over > 0 else (hi - lo) // 2
            guess = min(max(down(hi - step), lo + quantum), down(hi - 1))
        else:  # bisect
            guess = min(max(down((lo + hi) // 2), lo + quantum), down(hi - 1))
    best = max((r for r in out if r.status == "ok"), key=lambda r: r.global_batch, default=None)
    if best is not None:
        best.reason += (f": the largest fit ({hi} fails)" if hi is not None else
                        f": the largest fit in {len(out)} compiles, none failed (no upper bound found)")
    return out
