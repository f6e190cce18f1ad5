"""What the LRU learned: λ of every CML block, initial vs trained, and λ as the image modulates it.

Figures (PNG, one per question), written by `make_figures`:

    eigen_plane.png      λ in the complex plane, initial | trained, unit circle solid and the
                         r_min / r_max rings dashed (as the paper's Fig. 5)
    eigen_hist.png       histograms of |λ| and of the phase, initial vs trained
    eigen_memory.png     effective memory 1/(1 − |λ|) in tokens per block, against the image's row
                         width and token count
    eigen_effective.png  the distribution of the effective |λ·Mk_A| over a real image, per block

Under `reference` semantics at batch 1 there is no recurrence, and the image figure is replaced by
`NO_RECURRENCE`, one line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

DEFAULT_IMAGE = "LR_bicubic/X{scale}/babyx{scale}.png"   # in the bundled Set5 (lsm_jax.evaluation.benchmarks)
DEFAULT_SEED = 10     # the recipes' config.seed
NO_RECURRENCE = ("reference semantics at batch 1: the LRU scans the batch axis, a sequence of length 1, so "
                 "there is no recurrence (λ, ν, θ and Mk_A have no effect); no {what} plotted")


def resolve_checkpoint(path: str | os.PathLike) -> tuple[Path, Path | None]:
    """(model checkpoint dir, training workdir or None) from a checkpoint or a training workdir
    (its export/latest, else export/best)."""
    path = Path(path)
    if (path / "config.json").is_file():
        workdir = path.parents[1] if path.parent.name == "export" else None
        return path, workdir
    for name in ("latest", "best"):
        if (path / "export" / name / "config.json").is_file():
            return path / "export" / name, path
    raise FileNotFoundError(f"{path}: neither a model checkpoint (config.json + params/) nor a training workdir "
                            f"with export/latest (lsm-train --workdir DIR or lsm-convert -o DIR makes one)")


def run_seed(workdir: Path | None, seed: int | None) -> int:
    """The config seed a run was initialised with: given, else its study run.json, else the default."""
    if seed is not None:
        return seed
    if workdir is not None and (workdir / "run.json").is_file():
        return int(json.loads((workdir / "run.json").read_text())["config_seed"])
    return DEFAULT_SEED


def lru_eigenvalues(params: Any) -> dict[str, np.ndarray]:
    """λ (N,) complex of every LRU in a parameter tree (an nnx Param state or its pure dict),
    keyed by block path ('layers/0/blocks/1'), in network order: exp(−exp(ν) + i·exp(θ))."""
    pure = nnx.to_pure_dict(params) if isinstance(params, nnx.State) else params
    flat = {tuple(str(getattr(k, "key", k)) for k in path): leaf
            for path, leaf in jax.tree_util.tree_flatten_with_path(pure)[0]}
    out = {}
    for path in sorted((p for p in flat if p[-2:] == ("lru_core", "nu_log")),
                       key=lambda p: [int(k) if k.isdigit() else k for k in p]):
        nu, theta = np.asarray(flat[path], np.float64), np.asarray(flat[path[:-1] + ("theta_log",)], np.float64)
        name = "/".join(k for k in path[:-3])
        out[name] = np.exp(-np.exp(nu)) * np.exp(1j * np.exp(theta))
    return out


def initial_model(cfg, seed: int):
    """The network as training initialises it (`make_init_fn`: jitted, `nnx.Rngs(config.seed)`)."""
    from lsm_jax.model.network import LSM
    graphdef, _ = nnx.split(nnx.eval_shape(lambda: LSM(cfg, rngs=nnx.Rngs(seed))))
    state = jax.jit(lambda: nnx.split(LSM(cfg, rngs=nnx.Rngs(seed)))[1])()
    return nnx.merge(graphdef, state)


def block_label(name: str) -> str:
    """'layers/1/blocks/3' -> 'rg1.blk3'."""
    parts = name.split("/")
    return f"rg{parts[1]}.blk{parts[3]}" if len(parts) == 4 else name


def has_recurrence_at_batch1(cfg) -> bool:
    """False under semantics that scan the batch axis (reference): at batch 1 nothing recurs."""
    from lsm_jax.model.semantics import resolve_semantics
    return resolve_semantics(cfg).scan_axis != "batch"


def load_image(path: str | None, scale: int) -> tuple[np.ndarray, str]:
    """An LR image as float32 (H, W, 3) in [0, 1] and its name (default: Set5 baby at this scale)."""
    from lsm_jax.data.image_io import read_rgb8
    if path:
        p = Path(path)
    else:
        from lsm_jax.evaluation.benchmarks import bundled_set5
        p = bundled_set5() / DEFAULT_IMAGE.format(scale=scale)
    if not p.is_file():
        raise FileNotFoundError(f"-i {p}: no such file")
    return read_rgb8(p).astype(np.float32) / 255.0, p.name


def capture_cml(model, image: np.ndarray) -> list[dict[str, np.ndarray]]:
    """The CML blocks' intermediates (category, sort order, λ_eff, states) of one image at batch 1."""
    from lsm_jax.model.network import capture
    graphdef, state = nnx.split(model)

    @jax.jit
    def run(state, x):
        _, acts = capture(nnx.merge(graphdef, state), x)
        keep = ("category", "sort_idx", "lru_lambda_eff", "lru_states")
        return [{k: d[k] for k in keep} for d in acts["cml_blocks"]]

    return jax.tree.map(np.asarray, run(state, jnp.asarray(image)[None]))


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _rings(ax, cfg) -> None:
    t = np.linspace(0, 2 * np.pi, 400)
    ax.plot(np.cos(t), np.sin(t), color="k", lw=0.8)
    for r in (cfg.rmin, cfg.rmax):
        ax.plot(r * np.cos(t), r * np.sin(t), color="gray", ls="--", lw=0.8)
    ax.set_aspect("equal")
    ax.set(xlim=(-1.05, 1.05), ylim=(-1.05, 1.05), xlabel="Re λ", ylabel="Im λ")


def plot_plane(panels: list[tuple[str, dict]], cfg, path: Path) -> Path:
    """λ of every block in the complex plane, one panel per (title, {block: λ})."""
    plt = _plt()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.6), squeeze=False)
    for ax, (title, lams) in zip(axes[0], panels):
        _rings(ax, cfg)
        for i, (name, lam) in enumerate(lams.items()):
            ax.scatter(lam.real, lam.imag, s=14, color=f"C{i % 10}", label=block_label(name), alpha=0.8)
        ax.set_title(f"{title}\nrings r_min={cfg.rmin:g}, r_max={cfg.rmax:g}; θ_max={cfg.max_phase:.3g}", fontsize=9)
    axes[0][-1].legend(fontsize=7, loc="lower left", ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_hist(panels: list[tuple[str, dict]], cfg, path: Path) -> Path:
    """Histograms of |λ| and of the phase (in [0, 2π)), all blocks pooled, initial vs trained."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    for i, (title, lams) in enumerate(panels):
        lam = np.concatenate(list(lams.values()))
        a1.hist(np.abs(lam), bins=30, range=(min(cfg.rmin, np.abs(lam).min()) - 0.02, 1.0), alpha=0.55,
                color=f"C{i}", label=title)
        a2.hist(np.mod(np.angle(lam), 2 * np.pi), bins=30, range=(0, 2 * np.pi), alpha=0.55, color=f"C{i}",
                label=title)
    for r in (cfg.rmin, cfg.rmax):
        a1.axvline(r, color="gray", ls="--", lw=0.8)
    a1.set(xlabel="|λ|", ylabel="count", title="modulus")
    a2.set(xlabel="phase (rad)", title=f"phase (θ_max = {cfg.max_phase:.3g})")
    a1.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_memory(panels: list[tuple[str, dict]], hw: tuple[int, int], image_name: str, path: Path) -> Path:
    """1/(1 − |λ|) in tokens per block (log axis), with the row width W and the token count H·W."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(panels[-1][1]) + 1.6))
    names = list(panels[-1][1])
    for i, (title, lams) in enumerate(panels):
        for j, name in enumerate(names):
            mem = 1.0 / (1.0 - np.abs(lams[name]))
            ax.scatter(mem, np.full(mem.shape, j + 0.15 * (i - (len(panels) - 1) / 2)), s=14, color=f"C{i}",
                       label=title if j == 0 else None, alpha=0.8)
    h, w = hw
    ax.axvline(w, color="k", ls="--", lw=0.8)
    ax.axvline(h * w, color="k", ls=":", lw=0.8)
    ax.text(w, len(names) - 0.4, f" row width {w}", fontsize=8)
    ax.text(h * w, len(names) - 0.4, f" tokens {h * w}", fontsize=8, ha="right")
    ax.set_xscale("log")
    ax.set_yticks(range(len(names)), [block_label(n) for n in names])
    ax.set(xlabel="effective memory 1/(1 − |λ|) (tokens)", ylim=(-0.6, len(names) - 0.2),
           title=f"memory vs {image_name} (LR {h}×{w})")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plot_effective(blocks: list[dict], names: list[str], image_name: str, path: Path) -> Path:
    """Histogram of |λ·Mk_A| over every token and state of one image, per block."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for i, (d, name) in enumerate(zip(blocks, names)):
        mod = np.abs(d["lru_lambda_eff"]).ravel()
        ax.hist(mod, bins=60, range=(0, 1), histtype="step", lw=1.2, color=f"C{i % 10}",
                label=f"{block_label(name)} (median {np.median(mod):.3f})")
    ax.set(xlabel="effective |λ·Mk_A| per token and state", ylabel="count", yscale="log",
           title=f"λ as modulated by the image ({image_name})")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def make_figures(checkpoint: str | os.PathLike, out: str | os.PathLike | None = None, image: str | None = None,
                 init_only: bool = False, seed: int | None = None) -> list[str]:
    """Writes the figures of a checkpoint or training workdir; returns report lines ('wrote PATH', notes)."""
    from lsm_jax.model.saved import load_model

    model_dir, workdir = resolve_checkpoint(checkpoint)
    model, cfg = load_model(model_dir)
    out = Path(out) if out else (workdir or model_dir) / "eigen"
    out.mkdir(parents=True, exist_ok=True)
    init_seed = run_seed(workdir, seed)
    initial = lru_eigenvalues(nnx.state(initial_model(cfg, init_seed), nnx.Param))
    trained = lru_eigenvalues(nnx.state(model, nnx.Param))
    panels = [(f"initial (seed {init_seed})", initial)] + ([] if init_only else [("trained", trained)])
    lines = []
    lr, name = load_image(image, int(cfg.upscale))
    written = [plot_plane(panels, cfg, out / "eigen_plane.png"), plot_hist(panels, cfg, out / "eigen_hist.png"),
               plot_memory(panels, lr.shape[:2], name, out / "eigen_memory.png")]
    if init_only:
        pass
    elif has_recurrence_at_batch1(cfg):
        from lsm_jax.training.validation import centre_crop
        crop = centre_crop(lr, 96)   # a 96×96 window keeps the captured states small
        written.append(plot_effective(capture_cml(model, crop), list(trained), name, out / "eigen_effective.png"))
    else:
        lines.append(NO_RECURRENCE.format(what="effective |λ·Mk_A|"))
    return lines + [f"wrote {p}" for p in written]
