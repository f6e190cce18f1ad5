"""Random-access training sources: the embedded photographs, HR-only and paired folders, and the
enlarged view of any of them. Each is picklable with a stable repr (grain validates it on restore)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np

from lsm_jax.data.image_io import ImageFileError, read_rgb8

EMBEDDED_NAMES = (
    "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field",
    "immunohistochemistry", "motorcycle_left", "motorcycle_right", "retina",
)

# ---------------------------------------------------------------------------
# Sources: random access, picklable, with a stable repr (grain validates it on restore).


@functools.lru_cache(maxsize=None)
def _load_embedded(name: str) -> np.ndarray:
    import skimage.data  # lazily: ~0.5 s import, only needed for this source

    if name in ("motorcycle_left", "motorcycle_right"):
        left, right, _ = skimage.data.stereo_motorcycle()
        img = left if name == "motorcycle_left" else right
    elif name in EMBEDDED_NAMES:
        img = getattr(skimage.data, name)()
    else:
        raise ValueError(f"unknown embedded image {name!r}; choose from {', '.join(EMBEDDED_NAMES)}")
    img = np.ascontiguousarray(img, dtype=np.uint8)
    img.setflags(write=False)  # shared by every record that reads it
    return img


def embedded_images() -> list[tuple[str, np.ndarray]]:
    """The embedded training photographs: ``[(name, RGB uint8 (H, W, 3)), ...]``."""
    return [(n, _load_embedded(n)) for n in EMBEDDED_NAMES]


class EmbeddedSource:
    """HR-only source over the scikit-image photographs (loaded lazily in each process)."""

    def __init__(self, names: tuple[str, ...] = EMBEDDED_NAMES):
        unknown = [n for n in names if n not in EMBEDDED_NAMES]
        if unknown:
            raise ValueError(f"unknown embedded image(s) {unknown}; choose from {', '.join(EMBEDDED_NAMES)}")
        self.names = tuple(names)

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, i: int) -> dict[str, Any]:
        n = self.names[i]
        return {"hr": _load_embedded(n), "name": f"embedded:{n}"}

    def __repr__(self) -> str:
        return f"EmbeddedSource(names={self.names})"


class HrFolderSource:
    """HR-only source: every image of a folder, decoded on read."""

    def __init__(self, hr_paths: list[Path]):
        self.hr_paths = [str(p) for p in hr_paths]

    def __len__(self) -> int:
        return len(self.hr_paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        p = self.hr_paths[i]
        return {"hr": read_rgb8(p), "name": p}

    def __repr__(self) -> str:
        first = self.hr_paths[0] if self.hr_paths else ""
        return f"HrFolderSource(n={len(self.hr_paths)}, first={first!r})"


class PairedFolderSource:
    """HR + pre-made LR pairs; each LR must be (H // scale, W // scale)."""

    def __init__(self, hr_paths: list[Path], lr_paths: list[Path], scale: int):
        if len(hr_paths) != len(lr_paths):
            raise ValueError("hr_paths and lr_paths differ in length")
        self.hr_paths = [str(p) for p in hr_paths]
        self.lr_paths = [str(p) for p in lr_paths]
        self.scale = scale

    def __len__(self) -> int:
        return len(self.hr_paths)

    def __getitem__(self, i: int) -> dict[str, Any]:
        hp, lp = self.hr_paths[i], self.lr_paths[i]
        hr, lr = read_rgb8(hp), read_rgb8(lp)
        _check_pair_shape(hp, hr.shape[:2], lp, lr.shape[:2], self.scale)
        return {"hr": hr, "lr": lr, "name": hp}

    def __repr__(self) -> str:
        first = self.hr_paths[0] if self.hr_paths else ""
        return f"PairedFolderSource(n={len(self.hr_paths)}, scale={self.scale}, first={first!r})"


class EnlargedSource:
    """BasicSR's ``dataset_enlarge_ratio``: each record repeated ``ratio`` times per epoch."""

    def __init__(self, source, ratio: int):
        self.source, self.ratio = source, int(ratio)

    def __len__(self) -> int:
        return len(self.source) * self.ratio

    def __getitem__(self, i: int):
        return self.source[i % len(self.source)]

    def __repr__(self) -> str:
        return f"EnlargedSource({self.source!r}, ratio={self.ratio})"


def _check_pair_shape(hr_path, hr_hw, lr_path, lr_hw, scale: int) -> None:
    want = (hr_hw[0] // scale, hr_hw[1] // scale)
    if tuple(lr_hw) != want:
        raise ImageFileError(
            lr_path, f"LR is {lr_hw[0]}x{lr_hw[1]} but HR {hr_path} is {hr_hw[0]}x{hr_hw[1]}, "
            f"so x{scale} needs LR {want[0]}x{want[1]}"
        )
