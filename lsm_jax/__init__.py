"""lsm-jax: LSM (Linear Recurrent Unit with Semantic Modulation) super-resolution in JAX/Flax NNX.

Modules cite "spec §N": section N of docs/spec.md, the description of the paper and of what the authors'
code computes."""

__version__ = "0.1.0"
