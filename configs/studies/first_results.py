r"""First results (README, study section): the paper's three ring settings and `paper` vs `reference`
semantics on the tiny LSM-light x2, 3 seeds each, 120 steps of batch 4 on the embedded photographs, scored on Set5.

    lsm-study --config studies/first_results --workdir studies/first_results

12 runs, 36.5 min on the 2-core CPU while other jobs kept its load average at 10–18. Expected (the
committed table, experiments/results/studies/first_results/report.md): all four settings within
0.25 dB of each other on Set5 (30.29–30.52 dB, still below bicubic's 33.67 dB at this length), with a
seed std of 0.5–0.8 dB; `paper` − `reference` = +0.19 ± 0.10 dB paired by seed.

Zipped: (r_min, r_max, θ_max, semantics) = (0.4, 0.9, 2π, paper), (0.9, 0.99, π/2, paper),
(0.9, 0.99, 2π, paper), (0.9, 0.99, 2π, reference). The EMA is off (ema_decay 0: the scored weights are
the final ones): after 120 steps any EMA would still carry much of the initialisation.
"""

from lsm_jax.training.config_loader import load_config

STUDY = dict(
    zip=["model.rmin=0.4,0.9,0.9,0.9", "model.rmax=0.9,0.99,0.99,0.99", "model.max_phase=6.283,1.571,6.283,6.283",
         "model.semantics=paper,paper,paper,reference"],
    set=["ema_decay=0.0", "batch_size=4"], seeds=3, steps=120,
    baseline="rmin=0.9,rmax=0.99,max_phase=6.283,semantics=paper")  # the authors' ring, paper semantics


def get_config(arg: str = ""):
    """The tiny LSM-light recipe (lsm_light:tiny), validated on Set5 (the recipe's data/Set5)."""
    return load_config("lsm_light:tiny")
