"""Data bundled with the package: the Set5 benchmark (`Set5/`: HR and MATLAB-bicubic LR at x2, x3, x4, x8).

This folder (`data/` in the checkout) installs as the package `lsm_jax.bundled`, so the demo, the
recipes' validation (`eval.dirs=["data/Set5"]`) and the study figures find Set5 from an installed
package too; `lsm_jax.evaluation.benchmarks.bundled_set5()` returns its folder."""
