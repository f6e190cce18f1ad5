"""Large-batch learning-rate scaling: the recipe's LR and warm-up, adapted to a bigger global batch.

With `optim.lr_scaling = 'linear'` the learning rate is multiplied by f = B / B_ref (Goyal et al.,
2017), with 'sqrt' by f = sqrt(B / B_ref) (the usual rule for Adam-type optimisers); B_ref is
`optim.lr_reference_batch` (0: the recipe's own batch). When f > 1 the warm-up is stretched to
f · max(warmup_steps, lr_scaling_min_warmup) steps, so the larger LR is approached gradually
even by recipes that have no warm-up (the authors' scratch runs). Milestones and total steps are
left as they are: set them for the number of epochs you want.
"""

from __future__ import annotations

import math

import ml_collections

MODES = ("none", "linear", "sqrt")


def lr_factor(mode: str, batch: int, reference_batch: int) -> float:
    """The LR multiplier f of a scaling mode for global batch `batch` against `reference_batch`."""
    if mode not in MODES:
        raise ValueError(f"optim.lr_scaling must be one of {MODES}, got {mode!r}")
    if mode == "none" or reference_batch <= 0:
        return 1.0
    ratio = batch / reference_batch
    return ratio if mode == "linear" else math.sqrt(ratio)


def scale_optim(optim: ml_collections.ConfigDict, batch: int) -> ml_collections.ConfigDict:
    """A copy of the optimizer config with lr (and warm-up) scaled for global batch `batch`."""
    out = ml_collections.ConfigDict(optim.to_dict())
    mode = optim.get("lr_scaling", "none")
    f = lr_factor(mode, batch, int(optim.get("lr_reference_batch", 0)))
    if f == 1.0:
        return out
    out.lr = optim.lr * f
    if f > 1.0:
        base = max(int(optim.warmup_steps), int(optim.get("lr_scaling_min_warmup", 0)))
        out.warmup_steps = int(round(base * f))
    return out
