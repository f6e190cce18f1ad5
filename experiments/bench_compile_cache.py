r"""Compile time of train's step with and without the persistent compilation cache.

Runs `python -m lsm_jax.train` for one step three times in fresh processes: cache off, cache on and
empty (a first run: compiles and writes), cache on and filled (a restarted job: reads). Each run
reports "compiled the step in X s"; the ratio filled / off is the saving a restart sees.

    python -m experiments.bench_compile_cache [--config lsm_light:tiny] [--repeats 1]

(from the repository root, as every experiment runs: see experiments/__init__.py).
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def one_run(config: str, workdir: Path, cache: str) -> float:
    cmd = [sys.executable, "-m", "lsm_jax.train", "--config", config, "--workdir", str(workdir),
           "--config.total_steps=1", "--config.eval.every=0", "--config.progress_bar=False",
           f"--config.compile_cache_dir={cache}"]
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    m = re.search(r"compiled the step in ([\d.]+) s", out.stdout + out.stderr)
    if out.returncode or not m:
        raise RuntimeError((out.stdout + out.stderr)[-3000:])
    return float(m.group(1))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="lsm_light:tiny",
                   help="a packaged config (lsm_light:tiny) or a file path relative to the repository root")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--out", default=str(REPO / "experiments/results/compile_cache.csv"))
    args = p.parse_args()
    times = {"off": [], "cold": [], "warm": []}
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            times["off"].append(one_run(args.config, tmp / "w_off", ""))
            times["cold"].append(one_run(args.config, tmp / "w_cold", str(tmp / "cache")))
            times["warm"].append(one_run(args.config, tmp / "w_warm", str(tmp / "cache")))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"{args.config}: step compile {med['off']:.1f} s without the cache, {med['cold']:.1f} s filling it, "
          f"{med['warm']:.1f} s from it ({med['warm'] / med['off']:.2f}x of no cache)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["config", "cache_off_s", "cache_cold_s", "cache_warm_s", "warm_over_off"])
        w.writerow([args.config, med["off"], med["cold"], med["warm"], med["warm"] / med["off"]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
