r"""The λ-ring ablation of the paper's Fig. 5, with its mechanism, on the tiny LSM-light x2 (67K
parameters): six rows × 5 seeds, the tiny recipe stretched to 2400 steps (warm-up and lr milestones
scaled with it), scored on Set5 x2 and on the held-out Gray6 (six scikit-image photographs the
embedded training source does not contain).

    lsm-study --config studies/ring_ablation --workdir studies/ring_ablation      # 30 runs, resumable
    lsm-study --config studies/ring_ablation --workdir W --run-index K --num-runs 5   # seed K of every row
    lsm-study report studies/ring_ablation                                       # the table
    python -m experiments.ring_ablation --workdir studies/ring_ablation           # harvest into the committed study

Rows (r_min, r_max, θ_max, semantics, mk_a_scale), zipped in this order:
    baseline     (0.9, 0.99, 2π, paper, 1)     the authors' recipe ring, declared before the runs
    wide         (0, 1, 2π, paper, 1)          the default of the authors' LRU signature
    slow         (0.99, 0.999, π/10, paper, 1) the LRU paper's long-range ring
    small-phase  (0.9, 0.99, π/10, paper, 1)
    reference    (0.9, 0.99, 2π, reference, 1) the authors' code: the scan runs over the batch
    mk_a×16      (0.9, 0.99, 2π, paper, 16)    beyond the paper: decay λ·min(16·Mk_A, 1), so that the
                                               softmax's ~1/16 share no longer erases λ's memory

About 7.4 min per run on a quiet 2-core CPU (1.5× the demo's 1600 steps): 30 runs in about 3.7 hours,
so the committed study is trained in parts (seed K of every row at a time) and harvested. Expected:
the baseline ≥ 1.5 dB over bicubic on Set5 x2 in every seed (seed 0: 35.76 dB, bicubic 33.67 dB).
Found: experiments/results/studies/ring_ablation/ (docs/study.md renders it); the same document at
1600 steps (`--steps 1600`): experiments/results/studies/ring_ablation_1600/.
"""

from lsm_jax.training.config_loader import load_config

STUDY = dict(
    zip=["model.rmin=0.9,0.0,0.99,0.9,0.9,0.9", "model.rmax=0.99,1.0,0.999,0.99,0.99,0.99",
         "model.max_phase=6.283,6.283,0.314,0.314,6.283,6.283",
         "model.semantics=paper,paper,paper,paper,reference,paper",
         "model.mk_a_scale=1.0,1.0,1.0,1.0,1.0,16.0"],
    seeds=5, steps=2400, data=["data/Set5", "data/Gray6"],   # steps: 1.5× the recipe's, validated at the end
    baseline="rmin=0.9,rmax=0.99,max_phase=6.283,semantics=paper,mk_a_scale=1.0")  # the authors' ring, paper


def get_config(arg: str = ""):
    """The tiny LSM-light recipe (lsm_light:tiny, the demo's), validated on Set5 and Gray6."""
    return load_config("lsm_light:tiny")
