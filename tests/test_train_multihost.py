"""Two processes on localhost (CPU) train together through `jax.distributed.initialize`."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import numpy as np

from lsm_jax.training import checkpointing
from test_train import MICRO_OVERRIDES, REPO, params_of, subprocess_env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _paired_folder(root) -> None:
    """Four 32×32 HR images with 16×16 LR partners (pre-made: no resizing inside the loader)."""
    from lsm_jax.data.image_io import write_png
    rng = np.random.default_rng(0)
    for i in range(4):
        hr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        write_png(root / "HR" / f"im{i}.png", hr)
        write_png(root / "LR" / f"im{i}x2.png", hr[::2, ::2])


def test_two_processes_train_one_model(tmp_path):
    _paired_folder(tmp_path / "data")
    port = _free_port()
    env = subprocess_env()
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"  # one device per process, two in all
    procs = []
    for pid in range(2):
        cmd = [sys.executable, "-m", "lsm_jax.train", "--config", f"{REPO}/configs/lsm_light.py:tiny",
               "--workdir", str(tmp_path / "w"), "--config.total_steps=3", "--config.checkpoint.every=2",
               "--config.log_every=1", *MICRO_OVERRIDES, "--config.data.source=paired",
               f"--config.data.hr_dir={tmp_path / 'data' / 'HR'}", f"--config.data.lr_dir={tmp_path / 'data' / 'LR'}",
               "--config.distributed.initialize=True", f"--config.distributed.coordinator_address=localhost:{port}",
               "--config.distributed.num_processes=2", f"--config.distributed.process_id={pid}"]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        outs = [p.communicate(timeout=240)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-4000:]
    assert "devices: 2 (cpu) in 2 process(es); mesh {'data': 2, 'fsdp': 1, 'model': 1}" in outs[0]
    records = [json.loads(line) for line in (tmp_path / "w" / "metrics.jsonl").read_text().splitlines()]
    losses = [r["train/loss"] for r in records if "train/loss" in r]
    assert len(losses) == 3 and all(np.isfinite(losses))
    # One checkpoint for both processes, with each process's data iterator position inside.
    ckpt = checkpointing.Checkpointer(tmp_path / "w" / "checkpoints")
    assert ckpt.all_steps() == [2, 3]
    ckpt.close()
    files = sorted(p.name for p in (tmp_path / "w" / "checkpoints" / "3" / "data").glob("process_*.json"))
    assert files == ["process_0-of-2.json", "process_1-of-2.json"]
    # Process 0 exported the EMA weights for inference.
    assert all(np.isfinite(p).all() for p in params_of(tmp_path / "w" / "export" / "latest"))
