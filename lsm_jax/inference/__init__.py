"""Running a trained model: `forward` (jitted whole-image forward), `model_io` (inference checkpoints),
`upscale` (the command for users' images) and `convert` (the authors' checkpoints)."""
