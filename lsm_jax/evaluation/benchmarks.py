"""Benchmark folders by name: the sets bundled with the package, and the resolver of `eval.dirs`.

The repository's `data/` folder installs as the package `lsm_jax.bundled`. Its Set5 (HR/ and
LR_bicubic/X{s}/) is what the demo scores on and what the recipes validate on (`eval.dirs=["data/Set5"]`);
its Gray6 (HR/ only: LR made on the fly) is the studies' second held-out set (`data/Gray6`), six
scikit-image photographs that the embedded training source does not contain.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path, PurePath

BUNDLED_PACKAGE = "lsm_jax.bundled"
BUNDLED_NAMES = {"Set5": PurePath("data", "Set5"),     # the bundled sets, by the name the recipes use
                 "Gray6": PurePath("data", "Gray6")}   # held out from the embedded photographs (studies)


def bundled(name: str = "Set5") -> Path:
    """The folder of a benchmark set bundled with the package (installed as files, not zipped)."""
    root = resources.files(BUNDLED_PACKAGE) / name
    if not isinstance(root, Path) or not root.is_dir():
        raise FileNotFoundError(f"the bundled {name} is missing from the {BUNDLED_PACKAGE} package ({root})")
    return root


def bundled_set5() -> Path:
    """The bundled Set5 folder (HR/, LR_bicubic/X2, X3, X4, X8)."""
    return bundled("Set5")


def resolve_benchmark_dir(path: str | os.PathLike, option: str = "eval.dirs") -> Path:
    """A benchmark folder: `path` as given when it is a folder, else the bundled copy when `path` names a
    bundled set as the recipes spell it (`data/Set5`), from any working directory; FileNotFoundError
    naming `option` otherwise."""
    given = Path(path)
    if given.is_dir():
        return given
    for name, spelling in BUNDLED_NAMES.items():
        if not given.is_absolute() and PurePath(os.path.normpath(given)) == spelling:
            return bundled(name)
    raise FileNotFoundError(f"{option}: {str(path)!r} is not a directory")
