"""The training recipes of spec §8 as ml_collections configs; the config documents
(`configs/<variant>.py`, packaged as `lsm_jax.configs`) call `build`.

Every field of the training config, with its meaning, is set in `base_config`; a recipe row only
fills in the numbers of the authors' option files (patch, batch, lr, schedule, total steps).
"""

from __future__ import annotations

from typing import Any

import ml_collections

from lsm_jax.data.defaults import default_data_config
from lsm_jax.training.axis_rules import DEFAULT_RULES
from lsm_jax.model.variants import network_config

# Milestone sets of the authors' option files (γ = 0.5).
SCRATCH_MILESTONES = [250_000, 400_000, 450_000, 475_000]
X2_FINETUNE_MILESTONES = [120_000, 160_000, 180_000, 190_000]
X34_FINETUNE_MILESTONES = [125_000, 200_000, 225_000, 237_500]

# The CPU-sized model behind every variant's `tiny` recipe (`make demo`, tests): 67K parameters with
# the one-step tail. No drop path, and a shorter EMA (decay 0.995: a 200-step horizon) for runs of a
# few thousand steps.
TINY_MODEL = dict(embed_dim=32, depth=[2, 2], num_heads=[2, 2], mlp_ratio=2.0, num_tokens=16, d_state=4,
                  split_size=[8, 8])
TINY = dict(scale=2, patch=32, batch=8, lr=1e-3, warmup=100, steps=1600, milestones=[1100, 1400],
            drop_path=0.0, ema=0.995, eval_every=400, ckpt_every=400, log_every=50,
            data=dict(source="embedded"))


def base_config(variant: str, scale: int) -> ml_collections.ConfigDict:
    """All training fields with the defaults every recipe shares; recipes override the numbers."""
    c = ml_collections.ConfigDict()
    c.variant = variant
    c.recipe = ""
    c.seed = 10                       # the authors' manual_seed
    # Network (lsm_jax.model.variants): semantics 'paper' (default) or 'reference' (reproduce the
    # authors' code, spec §10); dtype 'float32' or 'bfloat16' (compute; params stay float32);
    # remat=True rematerialises each block in the backward pass.
    c.model = network_config(variant, scale)
    c.model.drop_path_rate = 0.1
    c.model.semantics = "paper"
    # c.model.scan: the LRU's scan strategy and options (lsm_jax.scan), e.g. --config.model.scan.impl=two_pass
    c.total_steps = 300_000
    c.batch_size = 32                 # global, over all devices and processes
    c.patch_size = 64                 # LR side of a training crop (BasicSR gt_size / scale)
    # Under semantics with cross-image recurrence (reference, Q1/Q6) images interact within a batch;
    # the authors' batches were per GPU. The step splits the global batch into independent groups of
    # this many images. 0: the whole global batch is one group.
    c.recurrence_group = 0
    c.loss = "l1"
    c.ema_decay = 0.999
    c.optim = ml_collections.ConfigDict(dict(
        name="adamw", lr=2e-4, b1=0.9, b2=0.9, eps=1e-8, weight_decay=0.0,
        schedule="warmup_multistep", warmup_steps=0, milestones=list(SCRATCH_MILESTONES), gamma=0.5,
        decay_steps=0, final_lr_ratio=0.0,   # warmup_cosine only
        grad_clip_norm=0.0,                  # 0: no clipping (as the authors)
        # LRU ablations (LRU paper): ν, θ, γ learn at lr × lru_lr_factor with no weight decay;
        # freeze: parameter names kept at their initial values (nu, theta, gamma, or any leaf name).
        lru_lr_factor=1.0, freeze=(),
        # Large batches (lsm_jax.training.lr_scaling): 'none' | 'linear' | 'sqrt' scaling of lr by
        # batch_size / lr_reference_batch (0: the recipe's batch), warm-up stretched by the same factor.
        lr_scaling="none", lr_reference_batch=0, lr_scaling_min_warmup=2000))
    # Gradient accumulation: each step averages the gradients of this many micro-batches (a lax.scan
    # over batch_size / grad_accum_steps examples each) before one optimizer update.
    c.grad_accum_steps = 1
    # Finetuning: a model checkpoint or a training workdir (its export/best); strict loading
    # requires every tensor to match, non-strict re-initialises mismatched ones and reports them.
    c.init_from = ""
    c.init_strict = True
    c.data = default_data_config()
    c.data.gt_size = c.get_ref("patch_size") * c.model.get_ref("upscale")
    c.mesh = ml_collections.ConfigDict(dict(data=-1, fsdp=1, model=1))
    c.sharding = ml_collections.ConfigDict(dict(
        rules=[list(r) for r in DEFAULT_RULES],
        min_size_to_shard=4096,       # arrays with fewer elements stay replicated
        constrain_activations=True))  # pin the network's named activations to the rules' layout
    # Persistent XLA compilation cache: 'auto' = JAX's own setting if one is made (e.g. the
    # JAX_COMPILATION_CACHE_DIR variable), else $LSM_JAX_CACHE_DIR or <user cache>/lsm-jax/jax
    # (lsm_jax.runtime.compile_cache); '' turns it off.
    c.compile_cache_dir = "auto"
    # Profiling: a jax.profiler trace of num_steps steps from start_step into <workdir>/profile
    # (TensorBoard's profile tab); start_step < 0 turns it off.
    c.profile = ml_collections.ConfigDict(dict(start_step=-1, num_steps=3))
    # Multi-host: initialize=True calls jax.distributed.initialize (empty fields: auto-detect, as on
    # TPU pods and SLURM).
    c.distributed = ml_collections.ConfigDict(dict(
        initialize=False, coordinator_address="", num_processes=0, process_id=-1))
    c.checkpoint = ml_collections.ConfigDict(dict(every=5000, keep=3, async_save=True))
    # Validation with the EMA weights on benchmark folders (HR/ + LR_bicubic/X{s}/), PSNR/SSIM on Y;
    # "data/Set5" is the Set5 bundled with the package wherever no such folder is in the working directory.
    c.eval = ml_collections.ConfigDict(dict(
        every=5000, dirs=["data/Set5"], num_images=3, crop=96, best_dir=0))
    c.log_every = 100
    c.progress_bar = True
    return c


def build(variant: str, recipe: str, rows: dict[str, dict[str, Any]]) -> ml_collections.ConfigDict:
    """The config of `recipe` from a variant's table of recipe rows.

    A row has: scale, patch, batch, lr, warmup, milestones, steps, and optionally init (the recipe
    to finetune from), strict, group (authors' per-GPU batch), eval_every, ckpt_every, model
    (network field overrides), ema, drop_path, schedule, data (data field overrides).
    """
    if recipe not in rows:
        raise ValueError(f"unknown recipe {recipe!r} for {variant}; choose from {', '.join(rows)}")
    row = rows[recipe]
    c = base_config(variant, row["scale"])
    c.recipe = recipe
    if "model" in row:
        c.model.update(row["model"])
    c.model.drop_path_rate = row.get("drop_path", 0.1)
    c.total_steps = row["steps"]
    c.batch_size = row["batch"]
    c.patch_size = row["patch"]
    c.recurrence_group = row.get("group", 0)
    c.ema_decay = row.get("ema", 0.999)
    c.optim.lr = row["lr"]
    c.optim.lr_reference_batch = row["batch"]
    c.optim.warmup_steps = row["warmup"]
    c.optim.milestones = list(row["milestones"])
    if row.get("schedule"):
        c.optim.schedule = row["schedule"]
        c.optim.decay_steps = row["steps"]
    if row.get("init"):
        c.init_from = f"runs/{variant}_{row['init']}"
        c.init_strict = row.get("strict", True)
    if "data" in row:
        c.data.update(row["data"])
    c.checkpoint.every = row.get("ckpt_every", 5000)
    c.eval.every = row.get("eval_every", 5000)
    c.log_every = row.get("log_every", 100)
    return lists_to_tuples(c)


def lists_to_tuples(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Turns every list field into a tuple, in place: `config_flags` can override tuples from the
    command line (`--config.model.depth='(2, 2)'`) but not lists."""
    for key in list(c.keys()):
        value = c[key]
        if isinstance(value, ml_collections.ConfigDict):
            lists_to_tuples(value)
        elif isinstance(value, list):
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
            del c[key]
            c[key] = value
    return c
