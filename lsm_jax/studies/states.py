"""How far the LRU state carries: |h| along one CML block's sorted sequence, with the category
boundaries marked, and the category map over the image (`python -m lsm_jax.study states`).

    states_sequence.png   mean over states of |h| at each sorted position (a line per state, faint),
                          category boundaries as vertical lines
    states_categories.png the image beside its token categories (the argmax of the SMU scores)

Under `reference` semantics at batch 1 there is no recurrence: one line (`eigen.NO_RECURRENCE`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lsm_jax.studies.eigen import (NO_RECURRENCE, _plt, block_label, capture_cml, has_recurrence_at_batch1,
                                   load_image, lru_eigenvalues, resolve_checkpoint)


def sorted_states(block: dict) -> dict[str, np.ndarray]:
    """From one block's capture (batch 1): |h| (L, N) in sorted order, the sorted categories (L,),
    the boundary positions (where the category changes) and the category map (L,) in raster order."""
    order = block["sort_idx"][0]
    category = block["category"][0]
    cat_sorted = category[order]
    return dict(modulus=np.abs(block["lru_states"][0]), categories=cat_sorted,
                boundaries=np.flatnonzero(np.diff(cat_sorted)) + 1, raster=category)


def carry_lengths(mod: np.ndarray, boundaries: np.ndarray) -> np.ndarray:
    """Per boundary: tokens after it until the mean |h| falls below half its value at the boundary's
    end of the previous category (how far state carries into the next category; capped by the next
    boundary)."""
    mean = mod.mean(axis=1)
    ends = list(boundaries[1:]) + [len(mean)]
    out = []
    for b, e in zip(boundaries, ends):
        ref = mean[b - 1]
        below = np.flatnonzero(mean[b:e] < 0.5 * ref)
        out.append(int(below[0]) if below.size else e - b)
    return np.asarray(out)


def make_figures(checkpoint: str | os.PathLike, image: str, block: int = 0,
                 out: str | os.PathLike | None = None) -> list[str]:
    """Writes the two figures for block `block` (0 = the first CML block); returns report lines."""
    from lsm_jax.model.saved import load_model
    from flax import nnx

    model_dir, workdir = resolve_checkpoint(checkpoint)
    model, cfg = load_model(model_dir)
    if not has_recurrence_at_batch1(cfg):
        return [NO_RECURRENCE.format(what="states")]
    names = list(lru_eigenvalues(nnx.state(model, nnx.Param)))
    if not 0 <= block < len(names):
        raise ValueError(f"--block {block}: the network has CML blocks 0..{len(names) - 1}")
    lr, name = load_image(image, int(cfg.upscale))
    h, w = lr.shape[:2]
    data = sorted_states(capture_cml(model, lr)[block])
    out = Path(out) if out else (workdir or model_dir) / "states"
    out.mkdir(parents=True, exist_ok=True)
    plt = _plt()
    label = block_label(names[block])

    fig, ax = plt.subplots(figsize=(10, 3.8))
    mod = data["modulus"]
    for n in range(mod.shape[1]):
        ax.plot(mod[:, n], lw=0.4, alpha=0.35, color=f"C{n % 10}")
    ax.plot(mod.mean(axis=1), lw=1.0, color="k", label="mean over states")
    for b in data["boundaries"]:
        ax.axvline(b, color="r", lw=0.6, ls="--")
    carry = carry_lengths(mod, data["boundaries"])
    median = f"; median carry past a boundary {int(np.median(carry))} tokens" if carry.size else ""
    ax.set(xlabel="position in the sorted sequence", ylabel="|h|", yscale="log",
           title=f"{label}: |h| along the sorted tokens of {name} ({h}×{w})\n"
                 f"{len(data['boundaries']) + 1} categories (boundaries red){median}")
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    p1 = out / "states_sequence.png"
    fig.savefig(p1, dpi=80)
    plt.close(fig)

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 4.4))
    a1.imshow(np.clip(lr, 0, 1))
    a1.set_title(name, fontsize=9)
    im = a2.imshow(data["raster"].reshape(h, w), cmap="tab20", interpolation="nearest",
                   vmin=0, vmax=max(int(cfg.num_tokens) - 1, 1))
    a2.set_title(f"{label}: category per token ({cfg.num_tokens} prototypes)", fontsize=9)
    fig.colorbar(im, ax=a2, fraction=0.046)
    for a in (a1, a2):
        a.axis("off")
    fig.tight_layout()
    p2 = out / "states_categories.png"
    fig.savefig(p2, dpi=80)
    plt.close(fig)
    return [f"wrote {p1}", f"wrote {p2}"]
