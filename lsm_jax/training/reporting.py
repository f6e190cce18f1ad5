"""Training logs: TensorBoard event files (tensorboardX, no TensorFlow), a JSON-lines history and a
console progress bar. Only process 0 writes; the other processes get no-op writers.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
from tqdm import tqdm


class MetricWriter:
    """Scalars and images to `<workdir>/tb` (TensorBoard) and scalars to `<workdir>/metrics.jsonl`."""

    def __init__(self, workdir: str | os.PathLike, enabled: bool = True):
        self.enabled = enabled
        self._tb = None
        self._jsonl = None
        if enabled:
            from tensorboardX import SummaryWriter  # import here: only process 0 needs it
            workdir = Path(workdir)
            workdir.mkdir(parents=True, exist_ok=True)
            self._tb = SummaryWriter(str(workdir / "tb"))
            self._jsonl = open(workdir / "metrics.jsonl", "a", buffering=1)

    def scalars(self, step: int, values: Mapping[str, float]) -> None:
        """One point per scalar at `step` (names like 'train/loss', 'val/Set5/psnr')."""
        if not self.enabled:
            return
        clean = {k: float(v) for k, v in values.items()}
        for key, value in clean.items():
            self._tb.add_scalar(key, value, step)
        self._jsonl.write(json.dumps({"step": int(step), **{k: (v if math.isfinite(v) else None)
                                                           for k, v in clean.items()}}) + "\n")

    def images(self, step: int, images: Mapping[str, np.ndarray]) -> None:
        """HWC float images in [0, 1] (or uint8)."""
        if not self.enabled:
            return
        for key, img in images.items():
            img = np.asarray(img)
            if img.dtype != np.uint8:
                img = np.clip(img, 0.0, 1.0)
            self._tb.add_image(key, img, step, dataformats="HWC")

    def text(self, step: int, key: str, value: str) -> None:
        """A text note (the resolved config, the sharding report)."""
        if self.enabled:
            self._tb.add_text(key, value, step)

    def flush(self) -> None:
        """Pushes buffered events to disk."""
        if self.enabled:
            self._tb.flush()

    def close(self) -> None:
        """Flushes and closes the files."""
        if self.enabled:
            self._tb.close()
            self._jsonl.close()
            self.enabled = False


CONFIG_FILE = "train_config.json"   # not config.json: a workdir can be an init_from checkpoint folder (lsm_jax.model.saved)


def save_config(workdir: str | os.PathLike, config) -> Path:
    """Writes the resolved config (recipe and overrides applied) to `<workdir>/train_config.json`, through a
    temporary file and a rename, so a reader never sees half a file; returns the path. Each start
    rewrites it: it is the config of the latest start (tuples become JSON lists)."""
    path = Path(workdir) / CONFIG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(config.to_json_best_effort(indent=2) + "\n")
    os.replace(tmp, path)
    return path


def read_history(workdir: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of `<workdir>/metrics.jsonl` (one dict per `scalars` call)."""
    path = Path(workdir) / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class ProgressBar:
    """tqdm over the steps, showing loss and lr; tqdm itself shows it/s and the ETA."""

    def __init__(self, start: int, total: int, enabled: bool = True):
        self._bar = tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, disable=not enabled,
                         smoothing=0.1, mininterval=1.0)

    def update(self, n: int = 1, **postfix: float) -> None:
        """Advances `n` steps; `postfix` values (loss, lr) are shown beside the bar."""
        if postfix:
            self._bar.set_postfix({k: f"{v:.3g}" for k, v in postfix.items()}, refresh=False)
        self._bar.update(n)

    def write(self, message: str) -> None:
        """Prints a line above the bar; with the bar off (`-q`) the line goes to the log, which `-q` quiets too."""
        if self._bar.disable:
            logging.getLogger("lsm_jax.train").info(message)
        else:
            self._bar.write(message)

    def close(self) -> None:
        """Removes the bar."""
        self._bar.close()
