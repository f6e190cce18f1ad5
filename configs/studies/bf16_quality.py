r"""bfloat16 against float32 compute on the demo recipe (the tiny LSM-light x2, 1600 steps), 3 seeds
each, scored on Set5 x2 and the held-out Gray6: does mixed precision train as well?

    lsm-study --config studies/bf16_quality --workdir studies/bf16_quality
    lsm-study report studies/bf16_quality --compare 2 1     # bfloat16 − float32, paired by seed

`model.dtype=bfloat16` computes the network's matmuls, convolutions and activations in bf16 and keeps
the parameters, the optimizer state, the LRU's scan state, the softmaxes, the norm statistics and the
loss in float32 (lsm_jax.model.layers). Seed k of both rows draws the same initial weights and the same
batches, so the difference is paired by seed.

6 runs, about 40 min on a 2-core CPU (which emulates bf16: its bf16 step is the slower one here).
Committed with its per-run results and loss histories in experiments/results/studies/bf16_quality/
(`python -m experiments.bf16_quality --workdir WORK` harvests a workdir; docs/pod.md renders the tables).
Expected and found: the float32 row reproduces the 1600-step ring ablation's baseline seeds bit for bit
(seed 0: 35.38 dB on Set5 x2, as `make demo`). bfloat16 loses a few hundredths of a dB on Set5 (the paired
CI just excludes 0), none detectable on Gray6 or in the training loss; its mean lies inside float32's
seed-to-seed CI on both sets.
"""

from lsm_jax.training.config_loader import load_config

STUDY = dict(sweep=["model.dtype=float32,bfloat16"], seeds=3, steps=1600, data=["data/Set5", "data/Gray6"],
             baseline="dtype=float32")


def get_config(arg: str = ""):
    """The tiny LSM-light recipe (lsm_light:tiny, the demo's), validated on Set5 and Gray6."""
    return load_config("lsm_light:tiny")
