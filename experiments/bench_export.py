"""The ONNX export's figures for docs/inference.md: file size, nodes, time, and the check against JAX.

    python -m experiments.bench_export          # writes experiments/results/export_onnx.csv (about a minute)

Each case saves a randomly initialised checkpoint of an official variant (`reference` semantics, the
authors' checkpoints' semantics; `paper` for the tiny network), exports it with `lsm_jax.inference.onnx_export
.export_onnx` at one input size, and records what the command reports: bytes, nodes, export and check times
(one run each: the time is indicative, the difference is the figure that matters), the largest |ONNX - JAX| on
the bundled Set5 crop, and how many 8-bit samples differ. Run from the repository root.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import jax
import onnxruntime
from flax import nnx

from experiments.results_csv import write_rows
from lsm_jax.inference.onnx_export import export_onnx
from lsm_jax.model.network import LSM
from lsm_jax.model.saved import save_model
from lsm_jax.model.variants import network_config

CASES = [("tiny", 2, "reference", 48), ("tiny", 2, "paper", 48), ("lsm_light", 4, "reference", 64),
         ("lsm", 2, "reference", 64)]
FIELDS = ("model", "scale", "semantics", "size", "bytes", "nodes", "export_s", "check_s", "max_abs_diff",
          "levels_differing", "samples", "onnxruntime", "note")


def case(root: Path, variant: str, scale: int, semantics: str, size: int) -> dict:
    cfg = network_config(variant, scale)
    cfg.semantics = semantics
    model = LSM(cfg, rngs=nnx.Rngs(0))
    ckpt = root / f"{variant}_x{scale}_{semantics}"
    save_model(ckpt, cfg, nnx.state(model, nnx.Param))
    r = export_onnx(ckpt, root / f"{ckpt.name}.onnx", (size, size))
    v = r["verified"]
    return dict(model=variant, scale=scale, semantics=semantics, size=f"{size}x{size}", bytes=r["bytes"],
                nodes=r["nodes"], export_s=round(r["export_seconds"], 2), check_s=round(r["verify_seconds"], 2),
                max_abs_diff=f"{v['max_abs_diff']:.2e}", levels_differing=v["levels_differing"],
                samples=v["samples"], onnxruntime=onnxruntime.__version__,
                note="random-init weights; one run")


def main() -> int:
    jax.config.update("jax_platforms", "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [case(Path(tmp), *c) for c in CASES]
    for r in rows:
        print(r)
    path = write_rows(Path(__file__).resolve().parent / "results" / "export_onnx.csv", rows, FIELDS)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
