"""lsm-jax: LSM (Linear Recurrent Unit with Semantic Modulation) super-resolution in JAX/Flax NNX."""

__version__ = "0.1.0"
