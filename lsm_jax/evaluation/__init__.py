"""Scoring by the SR community protocol: `metrics` (PSNR/SSIM on Y), `scoring` (benchmark folders),
`evaluate` (the command)."""
