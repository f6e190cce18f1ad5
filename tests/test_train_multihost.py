"""Pod-style start-up on localhost (CPU): two processes of two devices each train together through
`jax.distributed.initialize`, compute what one process computes on the same global batches, and
SIGTERM to one of them checkpoints everywhere at a common step and exits 0.

One run covers what used to take three (4 processes against 1, 2 against 1, SIGTERM to one of two):
two processes with two local devices each exercise both the cross-process reduction and the
process-local batch split over several devices, which one device per process cannot."""

from __future__ import annotations

import base64
import json
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from lsm_jax import train as cli
from lsm_jax.training import checkpointing, loop
from fixture_training import MICRO_OVERRIDES, REPO, params_of, subprocess_env

pytestmark = pytest.mark.usefixtures("compilation_cache")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _paired_folder(root) -> None:
    """Four 32×32 HR images with 16×16 LR partners (pre-made: no resizing inside the loader). Random
    content: a batch laid out in the wrong order, or on the wrong device, changes the loss."""
    from lsm_jax.data.image_io import write_png
    rng = np.random.default_rng(0)
    for i in range(4):
        hr = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        write_png(root / "HR" / f"im{i}.png", hr)
        write_png(root / "LR" / f"im{i}x2.png", hr[::2, ::2])


class _BothShards:
    """The global batches of a 2-process run, drawn in one process: process 0's share, then process 1's
    (the order in which the data axis of the mesh lays them out)."""

    def __init__(self, make_loader, cfg, **kw):
        self.its = [iter(make_loader(cfg, **{**kw, "shard_index": i, "shard_count": 2})) for i in range(2)]

    def __iter__(self):
        return self

    def __next__(self):
        parts = [next(it) for it in self.its]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def get_state(self):  # JSON, as the checkpoint stores it
        return [base64.b64encode(it.get_state()).decode("ascii") for it in self.its]

    def set_state(self, state):
        for it, s in zip(self.its, state):
            it.set_state(base64.b64decode(s))


def _losses(workdir) -> list[float]:
    path = workdir / "metrics.jsonl"
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]
    return [r["train/loss"] for r in records if "train/loss" in r]


def _finish(procs, timeout: float) -> list[str]:
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


def test_two_processes_train_one_model_and_stop_together_on_sigterm_to_one(tmp_path, monkeypatch):
    _paired_folder(tmp_path / "data")
    port = _free_port()
    env = subprocess_env()
    # Two devices per process, four in all. No compile of these processes is in the cache (their device
    # assignment is theirs alone): XLA's backend optimisations off halve the compile time.
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2 --xla_backend_optimization_level=0"
    args = ["--config", f"{REPO}/configs/lsm_light.py:tiny", "--config.checkpoint.every=2",
            "--config.log_every=1", *MICRO_OVERRIDES, "--config.data.source=paired",
            f"--config.data.hr_dir={tmp_path / 'data' / 'HR'}", f"--config.data.lr_dir={tmp_path / 'data' / 'LR'}"]
    procs = []
    for pid in range(2):
        cmd = [sys.executable, "-m", "lsm_jax.train", *args, "--config.total_steps=100000",
               "--workdir", str(tmp_path / "w"), "--config.distributed.initialize=True",
               f"--config.distributed.coordinator_address=localhost:{port}",
               "--config.distributed.num_processes=2", f"--config.distributed.process_id={pid}"]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    try:
        deadline = time.time() + 600
        while time.time() < deadline and all(p.poll() is None for p in procs) and len(_losses(tmp_path / "w")) < 3:
            time.sleep(0.2)
        assert all(p.poll() is None for p in procs), procs[0].communicate()[0][-3000:]
        procs[1].send_signal(signal.SIGTERM)  # the preemption notice reaches one host only
        outs = _finish(procs, timeout=300)
    finally:
        for p in procs:
            p.kill()
    assert "devices: 4 (cpu) in 2 process(es); mesh {'data': 4, 'fsdp': 1, 'model': 1}" in outs[0]
    assert "stopping at step" in outs[0], outs[0][-3000:]
    # Both processes checkpointed the same step, each with its own data iterator position inside.
    ckpt = checkpointing.Checkpointer(tmp_path / "w" / "checkpoints")
    step = ckpt.latest_step()
    ckpt.close()
    losses = _losses(tmp_path / "w")
    assert step is not None and step >= 3 and len(losses) == step and all(np.isfinite(losses))
    files = sorted(p.name for p in (tmp_path / "w" / "checkpoints" / str(step) / "data").glob("process_*.json"))
    assert files == ["process_0-of-2.json", "process_1-of-2.json"]

    # One process (8 devices) trains the same config on the same global batches for as many steps.
    from lsm_jax.data import pipeline
    real = pipeline.make_train_loader
    monkeypatch.setattr(pipeline, "make_train_loader", lambda cfg, **kw: _BothShards(real, cfg, **kw))
    config, _ = cli.parse_args(["train", *args, f"--config.total_steps={step}", "--workdir", str(tmp_path / "one")])
    loop.train_and_evaluate(config, tmp_path / "one")
    # The same numbers: gradients are reduced over both processes' shares (float32 reduction order
    # differs between 4 and 8 devices, hence the tolerance).
    np.testing.assert_allclose(losses, _losses(tmp_path / "one"), rtol=2e-5)
    # Process 0 exported the EMA weights of the step it stopped at: those of the one-process run.
    for two, one in zip(params_of(tmp_path / "w" / "export" / "latest"), params_of(tmp_path / "one" / "export" / "latest")):
        np.testing.assert_allclose(two, one, rtol=1e-4, atol=2e-6)
