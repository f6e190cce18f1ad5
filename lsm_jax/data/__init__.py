"""Images in and out, MATLAB-compatible bicubic, LR folders (`make_lr`) and the grain training pipeline.

Import the submodule you need: `lsm_jax.data.config` (the data config, no grain), `image_io` (listing,
reading, PNG writing), `quantize` (float -> integer samples, the one rule), `imresize`, `pipeline`
(grain), `make_lr` (the command),
`make_dataset` (sub-images in ArrayRecord shards: the command), `records` (the 'records' source),
`record_format`, `subimages`."""
