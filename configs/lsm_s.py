r"""LSM-S (9.7M parameters at x2, LSM with 6 groups): the authors' recipes (spec §8) and a `tiny`.

Train (each finetune starts from the previous stage's workdir, `runs/lsm_s_<stage>`):

    lsm-train --config lsm_s:x2_scratch  --workdir runs/lsm_s_x2_scratch \
        --config.data.hr_dir=datasets/DF2K/HR --config.data.lr_dir=datasets/DF2K/LR_bicubic/X{scale}
    lsm-train --config lsm_s:x2_finetune --workdir runs/lsm_s_x2_finetune
    lsm-train --config lsm_s:x3_finetune --workdir runs/lsm_s_x3_finetune
    lsm-train --config lsm_s:x4_finetune --workdir runs/lsm_s_x4_finetune

Data: DF2K (DIV2K 800 + Flickr2K 2650) HR with pre-made bicubic LR; validation on the bundled Set5 (data/Set5).
Global batch 32 = 4 per GPU × 8 GPUs in the authors' runs; under `reference` semantics the step
keeps their 4-image recurrence groups. The finetune LR patch is 96.

Precision: these recipes compute in float32 (`model.dtype`), as the authors trained. **On a TPU pod, train
with `--config.model.dtype=bfloat16`**: it computes in bf16 with float32 parameters, optimizer state, scan
state, softmaxes, norm statistics and loss, for less memory per chip and a faster estimated step (docs/pod.md,
"float32 and bfloat16"), and it trains nearly as well: the paired study `configs/studies/bf16_quality.py` (the demo recipe,
3 seeds; docs/pod.md) finds a few hundredths of a dB lost on Set5, far inside the seed-to-seed spread.

`tiny` is a 231K-parameter classic-tail model (embed 32, depth [2, 2]) for CPU demos and tests:

    lsm-train --config lsm_s:tiny --workdir runs/tiny_lsm_s
"""

from lsm_jax.training import recipes

_DF2K = dict(source="paired", hr_dir="datasets/DF2K/HR", lr_dir="datasets/DF2K/LR_bicubic/X{scale}",
             filename_tmpl="{}x{scale}", num_workers=8)
_COMMON = dict(batch=32, group=4, data=_DF2K)

RECIPES = {
    "x2_scratch": dict(_COMMON, scale=2, patch=64, lr=2e-4, warmup=0, steps=300_000,
                       milestones=recipes.SCRATCH_MILESTONES),
    "x2_finetune": dict(_COMMON, scale=2, patch=96, lr=2e-4, warmup=10_000, steps=200_000,
                        milestones=recipes.X2_FINETUNE_MILESTONES, init="x2_scratch", strict=True),
    "x3_finetune": dict(_COMMON, scale=3, patch=96, lr=2e-4, warmup=10_000, steps=250_000,
                        milestones=recipes.X34_FINETUNE_MILESTONES, init="x2_finetune", strict=False),
    "x4_finetune": dict(_COMMON, scale=4, patch=96, lr=1e-4, warmup=10_000, steps=250_000,
                        milestones=recipes.X34_FINETUNE_MILESTONES, init="x2_finetune", strict=False),
    "tiny": dict(recipes.TINY, model=dict(recipes.TINY_MODEL, arch="LSM")),
}


def get_config(arg: str = "x2_scratch"):
    """The config of one recipe: x2_scratch | x2_finetune | x3_finetune | x4_finetune | tiny."""
    return recipes.build("lsm_s", arg, RECIPES)
