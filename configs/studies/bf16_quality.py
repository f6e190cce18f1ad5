r"""bfloat16 against float32 compute on the demo recipe (the tiny LSM-light x2, 1600 steps), 3 seeds
each, scored on Set5 x2 and the held-out Gray6: does mixed precision train as well?

    lsm-study --config studies/bf16_quality --workdir studies/bf16_quality
    lsm-study report studies/bf16_quality --compare 2 1     # bfloat16 − float32, paired by seed

`model.dtype=bfloat16` computes the network's matmuls, convolutions and activations in bf16 and keeps
the parameters, the optimizer state, the LRU's scan state, the softmaxes, the norm statistics and the
loss in float32 (lsm_jax.model.layers). Seed k of both rows draws the same initial weights and the same
batches, so the difference is paired by seed.

6 runs. Not run yet: bf16 on this CPU has no native matrix unit, so it is a question for an
accelerator or a longer CPU budget. Expected: the float32 row reproduces the ring ablation's baseline
seeds 0–2 (35.38 dB for seed 0, as `make demo`); bf16 within the paired CI of it. Until this is run,
the pod recipes train in float32 (docs/pod.md shows what bf16 would save).
"""

from lsm_jax.training.config_loader import load_config

STUDY = dict(sweep=["model.dtype=float32,bfloat16"], seeds=3, steps=1600, data=["data/Set5", "data/Gray6"],
             baseline="dtype=float32")


def get_config(arg: str = ""):
    """The tiny LSM-light recipe (lsm_light:tiny, the demo's), validated on Set5 and Gray6."""
    return load_config("lsm_light:tiny")
