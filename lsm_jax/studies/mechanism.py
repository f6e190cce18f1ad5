"""How long the LRU remembers, per run of a study: the decay a = λ·Mk_A the recurrence applies at each
token, the memory length it implies, and the eigenvalues before and after training.

For every finished run (its export/latest) and every Set5 LR image at the run's scale, whole, at batch 1:

- **decay**: |a| = |λ·Mk_A| of every token, state and CML block, in the order the scan sees them;
- **e-folding length** τ = −1/ln|a| per token and state: the tokens a state would last at that decay
  (continuous, so it tells 0.07 from 0.3 where a whole-token count cannot);
- **memory length**: for a state written at token t, the number of further tokens k until the product
  |a_{t+1}|···|a_{t+k}| falls below 1/e (at least 1). A state still above 1/e at the end of the sequence
  counts as censored at the tokens that were left (so a median is exact while fewer than half are censored);
- **eigenvalues**: λ of every block at initialisation (the run's own seed, `eigen.initial_model`) and
  after training, with the bare e-folding length −1/ln|λ| that λ alone would give.

Under semantics that scan the batch axis (`reference`), at batch 1 there is nothing to scan: the
memory length is reported as 0 and `recurrence` is False (the decay is still λ times the batch-mean
Mk_A, which at batch 1 is the image's own).

`summarise_run` returns per-run figures and fixed-bin histograms (so that a row's picture pools its
seeds without keeping every token); `plot_rows` draws one panel per row.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

DECAY_BINS = np.linspace(0.0, 1.0, 101)                       # |λ·Mk_A|
EFOLD_BINS = np.logspace(-2, 4, 61)                          # τ = −1/ln|a| in tokens, 0.01 .. 10⁴
ONE_OVER_E = -1.0                                             # log threshold


def memory_lengths(decay: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """decay (L, N): |a| along the scan order -> (k (L, N) int, censored (L, N) bool).

    k[t, n] is the least k ≥ 1 with Σ_{i=1..k} log|a[t+i, n]| ≤ −1 (the state written at t has decayed
    to 1/e), or L−1−t with censored True when the sequence ends first."""
    length, states = decay.shape
    logs = np.log(np.maximum(decay.astype(np.float64), 1e-300))
    cum = np.concatenate([np.zeros((1, states)), np.cumsum(logs, axis=0)])   # cum[j] = Σ_{i<j} log|a_i|
    k = np.empty((length, states), np.int64)
    censored = np.empty((length, states), bool)
    for n in range(states):
        falling = -cum[:, n]                                  # non-decreasing
        # after token t the state has been multiplied by a[t+1..j-1]: Σ = cum[j] − cum[t+1]
        start = falling[1:length + 1]                         # −cum[t+1] for t = 0..L−1
        j = np.searchsorted(falling, start - ONE_OVER_E, side="left")   # first j with −cum[j] ≥ −cum[t+1] + 1
        steps = j - np.arange(1, length + 1)
        over = j > length
        k[:, n] = np.where(over, length - 1 - np.arange(length), steps)
        censored[:, n] = over
    return k, censored


def efolding(decay: np.ndarray) -> np.ndarray:
    """τ = −1/ln|a| in tokens (|a| = 1/e gives 1; |a| → 0 gives 0; |a| → 1 grows as 1/(1 − |a|))."""
    a = np.clip(np.abs(decay).astype(np.float64), 1e-300, 1.0 - 1e-12)
    return -1.0 / np.log(a)


def _quantiles(values: np.ndarray) -> dict[str, float]:
    q = np.quantile(values, [0.1, 0.5, 0.9]) if values.size else [math.nan] * 3
    return dict(p10=float(q[0]), median=float(q[1]), p90=float(q[2]))


def summarise_run(run_dir: str | Path, images: list[np.ndarray] | None = None) -> dict[str, Any]:
    """The mechanism figures of one trained run (a training workdir with export/latest); `images`:
    LR float32 (H, W, 3) in [0, 1] (default: the bundled Set5 LR at the run's scale)."""
    from flax import nnx

    from lsm_jax.model.saved import load_model
    from lsm_jax.studies.eigen import (capture_cml, has_recurrence_at_batch1, initial_model, lru_eigenvalues,
                                       resolve_checkpoint, run_seed)

    model_dir, workdir = resolve_checkpoint(run_dir)
    model, cfg = load_model(model_dir)
    if images is None:
        images = set5_lr(int(cfg.upscale))
    recurrence = has_recurrence_at_batch1(cfg)
    decays, memories, censored = [], [], []
    for image in images:
        for block in capture_cml(model, image):
            decay = np.abs(block["lru_lambda_eff"][0])                    # (L, N), scan order
            decays.append(decay.ravel())
            if recurrence:
                k, cens = memory_lengths(decay)
                memories.append(k.ravel())
                censored.append(cens.ravel())
    decay = np.concatenate(decays)
    memory = np.concatenate(memories) if memories else np.zeros_like(decay, dtype=np.int64)
    cens = np.concatenate(censored) if censored else np.zeros(memory.shape, bool)
    trained = np.concatenate(list(lru_eigenvalues(nnx.state(model, nnx.Param)).values()))
    initial = np.concatenate(list(lru_eigenvalues(
        nnx.state(initial_model(cfg, run_seed(workdir, None)), nnx.Param)).values()))
    tau = efolding(decay)
    return dict(
        recurrence=recurrence,
        decay=_quantiles(decay), decay_mean=float(decay.mean()), efold=_quantiles(tau),
        memory=_quantiles(memory.astype(np.float64)), memory_censored=float(cens.mean()),
        lambda_abs_initial=float(np.abs(initial).mean()), lambda_abs_trained=float(np.abs(trained).mean()),
        bare_efold_median=float(np.median(efolding(np.abs(trained)))),
        decay_hist=np.histogram(decay, DECAY_BINS)[0], efold_hist=np.histogram(tau, EFOLD_BINS)[0],
        eigen_initial=initial, eigen_trained=trained, rings=(float(cfg.rmin), float(cfg.rmax)))


_ARRAYS = ("decay_hist", "efold_hist")
_COMPLEX = ("eigen_initial", "eigen_trained")


def summary_to_json(summary: dict[str, Any]) -> dict[str, Any]:
    """`summarise_run`'s result as JSON-ready values (complex arrays as {'re', 'im'} lists), so that a
    study's per-run mechanism files can be committed and pictured again without the trained weights."""
    out = dict(summary)
    out.update({k: np.asarray(summary[k]).tolist() for k in _ARRAYS})
    out.update({k: dict(re=np.real(summary[k]).tolist(), im=np.imag(summary[k]).tolist()) for k in _COMPLEX})
    out["rings"] = list(summary["rings"])
    return out


def summary_from_json(data: dict[str, Any]) -> dict[str, Any]:
    """The inverse of `summary_to_json`."""
    out = dict(data)
    out.update({k: np.asarray(data[k], np.int64) for k in _ARRAYS})
    out.update({k: np.asarray(data[k]["re"]) + 1j * np.asarray(data[k]["im"]) for k in _COMPLEX})
    out["rings"] = tuple(data["rings"])
    return out


def set5_lr(scale: int) -> list[np.ndarray]:
    """The bundled Set5 LR images at `scale` as float32 (H, W, 3) in [0, 1]."""
    from lsm_jax.data.image_io import list_images, read_rgb8
    from lsm_jax.evaluation.benchmarks import bundled_set5
    return [read_rgb8(p).astype(np.float32) / 255.0
            for p in list_images(bundled_set5() / "LR_bicubic" / f"X{scale}")]


def plot_rows(rows: list[dict[str, Any]], out: str | Path) -> list[Path]:
    """Three pictures, one panel per row: `decay.png` (the |λ·Mk_A| histogram pooled over the row's seeds,
    median marked, beside the trained |λ|), `memory.png` (the e-folding length −1/ln|λ·Mk_A| in tokens,
    pooled, against the bare −1/ln|λ|), `eigenvalues.png` (λ in the plane, initial grey and trained
    coloured, with the rings).

    Each row: {'name', 'runs': [summarise_run results]}."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pictures = [("decay.png", _decay_panel, (4.2, 3.0), "upper center"),
                ("memory.png", _memory_panel, (4.2, 3.0), None),
                ("eigenvalues.png", _eigen_panel, (3.4, 3.4), "lower left")]
    return [_draw(rows, panel, size, legend, out / name) for name, panel, size, legend in pictures]


def _draw(rows: list[dict[str, Any]], panel, size: tuple[float, float], legend: str | None, path: Path) -> Path:
    """One figure: `panel(ax, row)` per row on a grid of up to 3 columns, spare axes hidden, the first
    panel's legend at `legend` (None: the panels draw their own)."""
    from lsm_jax.studies.eigen import _plt
    plt = _plt()
    cols = min(len(rows), 3)
    nrows = math.ceil(len(rows) / cols)
    fig, axes = plt.subplots(nrows=nrows, ncols=cols, squeeze=False, figsize=(size[0] * cols, size[1] * nrows))
    for ax, row in zip(axes.flat, rows):
        panel(ax, row)
    for ax in axes.flat[len(rows):]:
        ax.axis("off")
    if legend:
        axes[0][0].legend(fontsize=7, loc=legend)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _decay_panel(ax, row: dict[str, Any]) -> None:
    hist = sum(r["decay_hist"] for r in row["runs"])
    ax.stairs(hist, DECAY_BINS, fill=True, alpha=0.6, color="C0", label="|λ·Mk_A| (decay applied)")
    lam = np.concatenate([np.abs(r["eigen_trained"]) for r in row["runs"]])
    ax.hist(lam, bins=DECAY_BINS, weights=np.full(lam.shape, hist.sum() / max(lam.size, 1)), histtype="step",
            color="C3", lw=1.2, label="|λ| trained (bare)")
    med = float(np.median([r["decay"]["median"] for r in row["runs"]]))
    ax.axvline(med, color="k", ls="--", lw=0.8)
    ax.set(yscale="log", xlim=(0, 1), xlabel="per-token decay", title=f"{row['name']}: median {med:.3f}")


def _memory_panel(ax, row: dict[str, Any]) -> None:
    if not row["runs"][0]["recurrence"]:
        ax.text(0.5, 0.5, "no recurrence at batch 1\n(the scan runs over the batch)", ha="center",
                va="center", transform=ax.transAxes)
        ax.set(title=row["name"], xticks=[], yticks=[])
        return
    hist = sum(r["efold_hist"] for r in row["runs"])
    ax.stairs(hist, EFOLD_BINS, fill=True, alpha=0.6, color="C2", label="−1/ln|λ·Mk_A|")
    bare = float(np.median([r["bare_efold_median"] for r in row["runs"]]))
    med = float(np.median([r["efold"]["median"] for r in row["runs"]]))
    ax.axvline(bare, color="C3", lw=1.2, label=f"bare −1/ln|λ|: {bare:.3g}")
    ax.axvline(med, color="k", ls="--", lw=0.8)
    ax.set(xscale="log", yscale="log", xlabel="e-folding length (tokens)", title=f"{row['name']}: median {med:.2g}")
    ax.legend(fontsize=7, loc="upper right")


def _eigen_panel(ax, row: dict[str, Any]) -> None:
    t = np.linspace(0, 2 * np.pi, 300)
    ax.plot(np.cos(t), np.sin(t), color="k", lw=0.7)
    for r in row["runs"][0]["rings"]:
        ax.plot(r * np.cos(t), r * np.sin(t), color="gray", ls="--", lw=0.7)
    ini = np.concatenate([r["eigen_initial"] for r in row["runs"]])
    tra = np.concatenate([r["eigen_trained"] for r in row["runs"]])
    ax.scatter(ini.real, ini.imag, s=8, color="0.6", label="initial")
    ax.scatter(tra.real, tra.imag, s=8, color="C1", label="trained")
    ax.set_aspect("equal")
    ax.set(xlim=(-1.05, 1.05), ylim=(-1.05, 1.05), title=row["name"], xticks=[-1, 0, 1], yticks=[-1, 0, 1])
