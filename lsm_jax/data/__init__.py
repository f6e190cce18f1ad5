"""Images in and out, MATLAB-compatible bicubic, LR folders and the grain training pipeline.

Import the submodule you need: `defaults` (the data config, no grain), `image_io` (listing, reading, PNG
writing), `quantize` (float -> integer samples, the one rule), `imresize`, `lr_images` (LR folders),
`pipeline` (grain), `sources`, `records` (the 'records' source), `record_writer` (sub-images in ArrayRecord
shards), `record_format`, `subimages`. The commands are `lsm_jax.make_lr` and `lsm_jax.make_dataset`."""
