r"""`paper` (scan over each image's sorted tokens) vs `reference` (the authors' code: scan over the
batch axis, Mk_A averaged over the batch) on the tiny LSM-light x2, 3 seeds each, the tiny recipe's
1600 steps, scored on Set5 (at batch 1, where `reference` has no recurrence at all).

    lsm-study --config studies/semantics --workdir studies/semantics
    lsm-study report studies/semantics

6 runs. Expected: `paper` ahead of `reference` by a few tenths of a dB at most; the 120-step first
results (README study section) measured +0.19 dB (30.48 ± 0.75 vs 30.29 ± 0.77 dB), +0.19 ± 0.10 dB
paired by seed, every seed favouring `paper`: suggestive, not significant with 3 seeds.
"""

from lsm_jax.training.config_loader import load_config

STUDY = dict(sweep=["model.semantics=paper,reference"], seeds=3,
             baseline="semantics=paper")  # the authors' ring (the tiny recipe's 0.9, 0.99, 2π)


def get_config(arg: str = ""):
    """The tiny LSM-light recipe (lsm_light:tiny), validated on Set5 (the recipe's data/Set5)."""
    return load_config("lsm_light:tiny")
