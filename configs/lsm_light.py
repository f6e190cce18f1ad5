r"""LSM-light (763K parameters at x2): the authors' recipes (spec §8) and a CPU-sized `tiny`.

Train (each finetune starts from the previous stage's workdir, `runs/lsm_light_<stage>`):

    lsm-train --config lsm_light:x2_scratch  --workdir runs/lsm_light_x2_scratch \
        --config.data.hr_dir=datasets/DIV2K/DIV2K_train_HR \
        --config.data.lr_dir=datasets/DIV2K/DIV2K_train_LR_bicubic/X{scale}
    lsm-train --config lsm_light:x2_finetune --workdir runs/lsm_light_x2_finetune
    lsm-train --config lsm_light:x3_finetune --workdir runs/lsm_light_x3_finetune
    lsm-train --config lsm_light:x4_finetune --workdir runs/lsm_light_x4_finetune

Data: DIV2K (800 images) repeated ×100 per epoch; validation on the bundled Set5 (`data/Set5`; the authors
used Urban100: `--config.eval.dirs='("data/Set5", "path/to/Urban100")'`). Global batch 32 = 16 per GPU × 2 GPUs in
the authors' runs; under `reference` semantics the step keeps their 16-image recurrence groups.

Precision: these recipes compute in float32 (`model.dtype`), as the authors trained. **On a TPU pod, train
with `--config.model.dtype=bfloat16`**: it computes in bf16 with float32 parameters, optimizer state, scan
state, softmaxes, norm statistics and loss, for less memory per chip and a faster estimated step (docs/pod.md,
"float32 and bfloat16"), and it trains nearly as well: the paired study `configs/studies/bf16_quality.py` (the demo recipe,
3 seeds; docs/pod.md) finds a few hundredths of a dB lost on Set5, far inside the seed-to-seed spread.

`tiny` is the demo model (`make demo`): embed 32, depth [2, 2], 67K parameters, trained on the
embedded scikit-image photographs: 1600 steps reach 35.38 dB on Set5 x2 (bicubic 33.67 dB) in about
4.5 min of training on a quiet 2-core CPU (`make demo`; each run's figures: experiments/results/demo.csv).

    lsm-train --config lsm_light:tiny --workdir runs/tiny_light
"""

from lsm_jax.training import recipes

_DIV2K = dict(source="paired", hr_dir="datasets/DIV2K/DIV2K_train_HR",
              lr_dir="datasets/DIV2K/DIV2K_train_LR_bicubic/X{scale}", filename_tmpl="{}x{scale}",
              dataset_enlarge_ratio=100, num_workers=8)
_COMMON = dict(batch=32, group=16, data=_DIV2K)

RECIPES = {
    "x2_scratch": dict(_COMMON, scale=2, patch=64, lr=2e-4, warmup=20_000, steps=300_000,
                       milestones=recipes.SCRATCH_MILESTONES + [490_000]),
    "x2_finetune": dict(_COMMON, scale=2, patch=96, lr=2e-4, warmup=10_000, steps=200_000,
                        milestones=recipes.X2_FINETUNE_MILESTONES, init="x2_scratch", strict=True),
    "x3_finetune": dict(_COMMON, scale=3, patch=96, lr=2e-4, warmup=10_000, steps=250_000,
                        milestones=recipes.X34_FINETUNE_MILESTONES, init="x2_finetune", strict=False),
    "x4_finetune": dict(_COMMON, scale=4, patch=96, lr=2e-4, warmup=10_000, steps=250_000,
                        milestones=recipes.X34_FINETUNE_MILESTONES, init="x2_finetune", strict=False),
    "tiny": dict(recipes.TINY, model=dict(recipes.TINY_MODEL, arch="LSM_light")),
}


def get_config(arg: str = "x2_scratch"):
    """The config of one recipe: x2_scratch | x2_finetune | x3_finetune | x4_finetune | tiny."""
    return recipes.build("lsm_light", arg, RECIPES)
