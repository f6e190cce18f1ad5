"""Running a trained model on images: `forward` (the jitted whole-image forward), `strategy` (tiles, buckets,
self-ensemble, memory budget), `tiling`, `buckets`, `budget`, `ensemble`, and `image_files` (files in,
files out). The command is `lsm_jax.upscale`; the saved-model format is `lsm_jax.model.saved`."""
