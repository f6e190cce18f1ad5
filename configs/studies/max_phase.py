r"""A θ_max sweep of the LRU phase initialisation (r_min 0.9, r_max 0.99) on the tiny LSM-light x2,
3 seeds each, 400 steps each (schedule rescaled), scored on Set5.

    lsm-study --config studies/max_phase --workdir studies/max_phase

θ_max ∈ {π/50, π/10, π/2, 2π} (the LRU paper uses π/10 for long sequences): 12 runs. Not run yet.
Expected on this scale: no difference beyond the seed spread (π/2 vs 2π in the first results: −0.16 dB,
inside a seed std of 0.7 dB); the eigen figures show how far training moves θ.
"""

from lsm_jax.training.config_loader import load_config

STUDY = dict(sweep=["model.max_phase=0.0628,0.314,1.571,6.283"], set=["ema_decay=0.99"], seeds=3, steps=400,
             baseline="max_phase=6.283")  # the authors' ring: r_min 0.9, r_max 0.99 (the tiny recipe's), paper


def get_config(arg: str = ""):
    """The tiny LSM-light recipe (lsm_light:tiny), validated on Set5 (the recipe's data/Set5)."""
    return load_config("lsm_light:tiny")
