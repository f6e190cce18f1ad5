"""lsm-jax: LSM (Linear Recurrent Unit with Semantic Modulation) super-resolution in JAX/Flax NNX.

    from lsm_jax import load_model
    model = load_model("runs/demo/export/best")
    sr = model.upscale(photo)      # uint8 in, uint8 out; also uint16, floats and PIL images

`load_model` is `lsm_jax.inference.api` (imported on first use, so `import lsm_jax` stays light).
Modules cite "spec §N": section N of docs/spec.md, the description of the paper and of what the authors'
code computes."""

__version__ = "0.1.0"
__all__ = ["load_model"]


def __getattr__(name: str):
    if name in __all__:
        from lsm_jax.inference import api
        return getattr(api, name)
    raise AttributeError(f"module 'lsm_jax' has no attribute {name!r}")
