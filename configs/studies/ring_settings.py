r"""The paper's Fig. 5 ring settings on the tiny LSM-light x2: (r_min, r_max, θ_max) = (0.4, 0.9, 2π),
(0.9, 0.99, π/2), (0.9, 0.99, 2π), 3 seeds each, the tiny recipe's 1600 steps, scored on Set5.

    lsm-study --config studies/ring_settings --workdir studies/ring_settings
    lsm-study eigen studies/ring_settings/runs/<label>/seed0      # the λ pictures

9 runs of 1600 steps (~6 min each on a quiet 2-core CPU, by the demo's timing). Expected: the three
settings within the seed spread of each other; the 120-step first results (README study section)
found them within 0.2 dB (30.32–30.52 dB) against a seed std of 0.5–0.75 dB. The paper shows only
the rings and output crops, no PSNR.
"""

from lsm_jax.training.config_loader import load_config

STUDY = dict(zip=["model.rmin=0.4,0.9,0.9", "model.rmax=0.9,0.99,0.99", "model.max_phase=6.283,1.571,6.283"],
             seeds=3, baseline="rmin=0.9,rmax=0.99,max_phase=6.283")  # the authors' ring (semantics: paper)


def get_config(arg: str = ""):
    """The tiny LSM-light recipe (lsm_light:tiny), validated on Set5 (the recipe's data/Set5)."""
    return load_config("lsm_light:tiny")
