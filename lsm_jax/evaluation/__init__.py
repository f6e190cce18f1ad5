"""Scoring by the SR community protocol: `metrics` (PSNR/SSIM on Y) and `scoring` (benchmark folders).
The command is `lsm_jax.evaluate`."""
