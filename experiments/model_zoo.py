"""The model-zoo table of the README: the authors' nine released models, with what was checked here.

    python -m experiments.model_zoo          # writes experiments/results/model_zoo.csv

For each variant and scale: the name `lsm-upscale --model` takes, the architecture (`lsm_jax.model.variants`),
its trainable parameter count (from abstract shapes, no initialisation), and the file the authors' README
links for it on the Hugging Face hub (`mingyurun/LSM-pretrained`; `--model` finds the file by listing the
repository, so this column documents, it does not decide). Run from the repository root.
"""

from __future__ import annotations

from pathlib import Path

from experiments.results_csv import write_rows
from lsm_jax.model.network import count_parameters
from lsm_jax.model.variants import network_config

# The authors' README names one file per released model (their "Pretrained Models" table).
AUTHORS_FILES = {"lsm": "LSM_SR_x{s}.pth", "lsm_s": "LSM_S_SR_x{s}.pth", "lsm_light": "LSM_light_lightSR_x{s}.pth"}
NAMES = {"lsm": "LSM", "lsm_s": "LSM-S", "lsm_light": "LSM-light"}
TASKS = {"lsm": "classical SR", "lsm_s": "classical SR", "lsm_light": "lightweight SR"}
FIELDS = ("model", "variant", "scale", "task", "embed_dim", "depth", "parameters", "authors_file")


def rows() -> list[dict]:
    out = []
    for variant in ("lsm_light", "lsm_s", "lsm"):
        for scale in (2, 3, 4):
            cfg = network_config(variant, scale)
            out.append(dict(model=f"{variant}_x{scale}", variant=NAMES[variant],
                            scale=scale, task=TASKS[variant], embed_dim=cfg.embed_dim,
                            depth="x".join(map(str, (len(cfg.depth), cfg.depth[0]))),
                            parameters=count_parameters(cfg), authors_file=AUTHORS_FILES[variant].format(s=scale)))
    return out


def main() -> int:
    path = write_rows(Path(__file__).resolve().parent / "results" / "model_zoo.csv", rows(), FIELDS)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
