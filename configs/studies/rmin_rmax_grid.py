r"""An r_min × r_max grid of the LRU ring initialisation (θ_max = 2π) on the tiny LSM-light x2,
3 seeds per cell, 400 steps each (schedule rescaled), scored on Set5.

    lsm-study --config studies/rmin_rmax_grid --workdir studies/rmin_rmax

3 × 2 cells (r_min 0.0, 0.4, 0.9 × r_max 0.95, 0.999) = 18 runs. Not run yet. Expected on this scale:
a flat table, differences inside the seed spread (the ring settings of the first results, README study
section, differ by ≤ 0.2 dB against a seed std of 0.5–0.75 dB); the LRU paper's long-range tasks favour
r_max near 1, SR's sorted sequences need not.
No declared baseline: no cell is the authors' ring (r_max 0.99 is not on the grid), so the report shows
no Δ column; compare two cells with `lsm-study report DIR --compare A B`.
"""

from lsm_jax.training.config_loader import load_config

STUDY = dict(sweep=["model.rmin=0.0,0.4,0.9", "model.rmax=0.95,0.999"], set=["ema_decay=0.99"], seeds=3,
             steps=400)


def get_config(arg: str = ""):
    """The tiny LSM-light recipe (lsm_light:tiny), validated on Set5 (the recipe's data/Set5)."""
    return load_config("lsm_light:tiny")
