"""Pod-style start-up on localhost: 4 processes train exactly what 1 process trains with the same
global batch, and SIGTERM to one of several processes checkpoints everywhere and exits 0."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from lsm_jax.training import checkpointing
from test_train import MICRO_OVERRIDES, REPO, subprocess_env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _flat_images(root, n: int = 4) -> None:
    """n flat-colour 32×32 HR images with 16×16 LR partners: every crop, flip and shard order gives the
    same batch, so runs with different process counts must see identical global batches."""
    from lsm_jax.data.image_io import write_png
    for i in range(n):
        hr = np.full((32, 32, 3), (90, 140, 200), np.uint8)
        write_png(root / "HR" / f"im{i}.png", hr)
        write_png(root / "LR" / f"im{i}x2.png", hr[::2, ::2])


def _launch(n: int, workdir, data, extra: list[str], devices_per_process: int = 1) -> list[subprocess.Popen]:
    env = subprocess_env()
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices_per_process}"
    port = _free_port()
    base = [sys.executable, "-m", "lsm_jax.train", "--config", f"{REPO}/configs/lsm_light.py:tiny",
            "--workdir", str(workdir), "--config.log_every=1", *MICRO_OVERRIDES, "--config.data.source=paired",
            f"--config.data.hr_dir={data / 'HR'}", f"--config.data.lr_dir={data / 'LR'}", *extra]
    if n > 1:
        base += ["--config.distributed.initialize=True", f"--config.distributed.coordinator_address=localhost:{port}",
                 f"--config.distributed.num_processes={n}"]
    return [subprocess.Popen(base + ([f"--config.distributed.process_id={i}"] if n > 1 else []), env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(n)]


def _finish(procs, timeout: float = 600) -> list[str]:
    deadline = time.time() + timeout
    try:
        outs = [p.communicate(timeout=max(deadline - time.time(), 1))[0] for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            p.kill()
        tails = [p.communicate()[0][-1500:] for p in procs]
        pytest.fail(f"timed out after {timeout} s:\n" + "\n----\n".join(tails))
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-4000:]
    return outs


def _losses(workdir) -> list[float]:
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [r["train/loss"] for r in records if "train/loss" in r]


def test_four_processes_train_what_one_process_trains(tmp_path):
    _flat_images(tmp_path / "data")
    steps = ["--config.total_steps=2", "--config.checkpoint.every=0"]
    one = _launch(1, tmp_path / "one", tmp_path / "data", steps, devices_per_process=4)
    _finish(one)
    four = _launch(4, tmp_path / "four", tmp_path / "data", steps)
    outs = _finish(four)
    assert "devices: 4 (cpu) in 4 process(es)" in outs[0]
    # Each host read its own shard and recorded its own iterator position.
    files = sorted(p.name for p in (tmp_path / "four" / "checkpoints" / "2" / "data").glob("process_*.json"))
    assert files == [f"process_{i}-of-4.json" for i in range(4)]
    a, b = _losses(tmp_path / "one"), _losses(tmp_path / "four")
    print("1 process:", a, "4 processes:", b)
    assert len(a) == len(b) == 2
    np.testing.assert_allclose(b, a, rtol=1e-4)


def test_sigterm_to_one_of_two_processes_checkpoints_and_exits_zero(tmp_path):
    _flat_images(tmp_path / "data")
    procs = _launch(2, tmp_path / "w", tmp_path / "data", ["--config.total_steps=100000",
                                                            "--config.checkpoint.every=1000"])
    metrics = tmp_path / "w" / "metrics.jsonl"
    deadline = time.time() + 600
    while time.time() < deadline and all(p.poll() is None for p in procs):
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 2:
            break
        time.sleep(0.2)
    assert all(p.poll() is None for p in procs), procs[0].communicate()[0][-3000:]
    procs[1].send_signal(signal.SIGTERM)  # the preemption notice reaches one host only
    outs = _finish(procs, timeout=300)
    assert "stopping at step" in outs[0], outs[0][-3000:]
    ckpt = checkpointing.Checkpointer(tmp_path / "w" / "checkpoints")
    step = ckpt.latest_step()
    ckpt.close()
    assert step is not None and step >= 2
    files = sorted(p.name for p in (tmp_path / "w" / "checkpoints" / str(step) / "data").glob("process_*.json"))
    assert files == ["process_0-of-2.json", "process_1-of-2.json"]
