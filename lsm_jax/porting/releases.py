"""The authors' released models by name, and how their files are recognised in the hub repository.

    NAMES                       lsm_x2 ... lsm_light_x4: the nine released variants (lsm, lsm_s, lsm_light x 2, 3, 4)
    RELEASES[name]              a `Release`: variant, scale, repository (`HUB_REPO`, the one the authors' README
                                names), revision and file name (None: found by listing the repository)
    match_release_files(files, variant, scale)   the repository files whose names say that variant and scale

The file names inside the repository are not fixed here: `lsm_jax.porting.model_source` lists it and matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

__all__ = ["HUB_REPO", "HUB_URL", "NAMES", "RELEASES", "Release", "WEIGHT_SUFFIXES", "match_release_files",
           "release_name"]

HUB_REPO = "mingyurun/LSM-pretrained"
HUB_URL = f"https://huggingface.co/{HUB_REPO}"
VARIANTS = ("lsm", "lsm_s", "lsm_light")
SCALES = (2, 3, 4)
NAMES = tuple(f"{v}_x{s}" for v in VARIANTS for s in SCALES)
WEIGHT_SUFFIXES = (".safetensors", ".npz", ".pth", ".pt")    # also the preference among copies of one file


@dataclass(frozen=True)
class Release:
    """One released model: a variant and scale, in a hub repository. `filename` None: found by listing
    the repository and matching variant and scale in the file names (`match_release_files`)."""

    variant: str
    scale: int
    repo: str = HUB_REPO
    revision: str = "main"
    filename: str | None = None

    @property
    def name(self) -> str:
        return f"{self.variant}_x{self.scale}"


# The registry of names. Tests may point an entry at a repository of their own by replacing it.
RELEASES: dict[str, Release] = {f"{v}_x{s}": Release(v, s) for v in VARIANTS for s in SCALES}


def release_name(text: str) -> str | None:
    """The registry key `text` spells (case and `-`/`_` do not matter: `LSM-light-X4`), or None."""
    name = text.strip().lower().replace("-", "_")
    return name if name in RELEASES else None


_SCALE_X = re.compile(r"(?<![0-9])x([0-9])(?![0-9])")                   # x4, X4, lsmx4, _x4_
_SCALE_BARE = re.compile(r"(?<![a-z0-9])([0-9])(?![0-9a-z])")            # _4, -4 (not v2, div2k, 4k)
_SMALL = re.compile(r"(?:^|[^a-z])(?:lsm_?)?(?:s|small)(?=[^a-z]|$)")    # lsm_s, LSM-S, lsms, _small_


def _file_scale(norm: str) -> int | None:
    found = {int(m) for m in _SCALE_X.findall(norm)} or {int(m) for m in _SCALE_BARE.findall(norm)}
    return found.pop() if len(found) == 1 else None


def _file_variant(norm: str) -> str | None:
    light, small = "light" in norm, bool(_SMALL.search(norm))
    if light and small:
        return None
    if light:
        return "lsm_light"
    if small:
        return "lsm_s"
    return "lsm" if "lsm" in norm else None


def _normalized(path: str) -> str:
    suffix = PurePosixPath(path).suffix
    stem = path[: -len(suffix)] if suffix.lower() in WEIGHT_SUFFIXES else path
    return re.sub(r"[-_. /]+", "_", stem.lower())


def match_release_files(files: list[str], variant: str | None, scale: int | None) -> list[str]:
    """The weights files among `files` (repository paths) whose names say `variant` and `scale` (None: any).

    Names are compared case-insensitively with `-`, `.`, ` ` and `/` as `_`: `LSM_light_x4.pth`,
    `lsm-light-X4.safetensors`, `LSMlight_x4.pth` and `light/x4.pth` are lsm_light x4; `x4`, `X4` and `_4`
    give the scale; `LSM_S`/`lsms`/`small` is lsm_s, and a plain `LSM` file is one that is neither light nor
    small. A name that says two scales or two variants matches nothing. Copies of one file in several
    formats count once (the first of `WEIGHT_SUFFIXES`).
    """
    weights = [f for f in files if PurePosixPath(f).suffix.lower() in WEIGHT_SUFFIXES]
    found = [f for f in weights
             if (variant is None or _file_variant(_normalized(f)) == variant)
             and (scale is None or _file_scale(_normalized(f)) == scale)]
    best: dict[str, str] = {}
    rank = {s: i for i, s in enumerate(WEIGHT_SUFFIXES)}
    for f in sorted(found):
        suffix = PurePosixPath(f).suffix
        stem = f[: -len(suffix)]
        if stem not in best or rank[suffix.lower()] < rank[PurePosixPath(best[stem]).suffix.lower()]:
            best[stem] = f
    return sorted(best.values())
