"""Two processes on localhost (CPU) train together through `jax.distributed.initialize`, and compute
what one process computes on the same global batches."""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys

import numpy as np

from lsm_jax.training import checkpointing, cli, loop
from test_train import MICRO_OVERRIDES, REPO, compilation_cache, params_of, subprocess_env  # noqa: F401


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
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return [r["train/loss"] for r in records if "train/loss" in r]


def test_two_processes_train_one_model(tmp_path, monkeypatch):
    _paired_folder(tmp_path / "data")
    port = _free_port()
    env = subprocess_env()
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=1"  # one device per process, two in all
    args = ["--config", f"{REPO}/configs/lsm_light.py:tiny", "--config.total_steps=3", "--config.checkpoint.every=2",
            "--config.log_every=1", *MICRO_OVERRIDES, "--config.data.source=paired",
            f"--config.data.hr_dir={tmp_path / 'data' / 'HR'}", f"--config.data.lr_dir={tmp_path / 'data' / 'LR'}"]
    procs = []
    for pid in range(2):
        cmd = [sys.executable, "-m", "lsm_jax.train", *args, "--workdir", str(tmp_path / "w"),
               "--config.distributed.initialize=True", f"--config.distributed.coordinator_address=localhost:{port}",
               "--config.distributed.num_processes=2", f"--config.distributed.process_id={pid}"]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    # Meanwhile, one process (8 devices) trains the same config on the same global batches.
    from lsm_jax.data import pipeline
    real = pipeline.make_train_loader
    monkeypatch.setattr(pipeline, "make_train_loader", lambda cfg, **kw: _BothShards(real, cfg, **kw))
    config, _ = cli.parse_args(["train", *args, "--workdir", str(tmp_path / "one")])
    loop.train_and_evaluate(config, tmp_path / "one")
    try:
        outs = [p.communicate(timeout=240)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-4000:]
    assert "devices: 2 (cpu) in 2 process(es); mesh {'data': 2, 'fsdp': 1, 'model': 1}" in outs[0]
    losses = _losses(tmp_path / "w")
    assert len(losses) == 3 and all(np.isfinite(losses))
    # The same numbers as one process: gradients are reduced over both processes' shares (float32
    # reduction order differs between 2 and 8 devices, hence the tolerance).
    np.testing.assert_allclose(losses, _losses(tmp_path / "one"), rtol=2e-5)
    # One checkpoint for both processes, with each process's data iterator position inside.
    ckpt = checkpointing.Checkpointer(tmp_path / "w" / "checkpoints")
    assert ckpt.all_steps() == [2, 3]
    ckpt.close()
    files = sorted(p.name for p in (tmp_path / "w" / "checkpoints" / "3" / "data").glob("process_*.json"))
    assert files == ["process_0-of-2.json", "process_1-of-2.json"]
    # Process 0 exported the EMA weights for inference: those of the one-process run.
    for two, one in zip(params_of(tmp_path / "w" / "export" / "latest"), params_of(tmp_path / "one" / "export" / "latest")):
        np.testing.assert_allclose(two, one, rtol=1e-4, atol=2e-6)
