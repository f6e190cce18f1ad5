"""The one config loader: every command, experiment and test reads a config through `load_config`.

A config is named by a spec, `SOURCE[:ARG]`:

    lsm_light:tiny                      a packaged config document (`configs/lsm_light.py` in the checkout,
                                        installed as `lsm_jax.configs.lsm_light`), so it works from an install
    studies/ring_settings               a packaged study document (`configs/studies/ring_settings.py`)
    configs/lsm_light.py:tiny           any config file by its path
    /abs/path/my_recipe.py:x2           the same, for a user's own file

A path that is not a file here but spells a packaged document as the checkout does (`configs/NAME.py`)
loads the packaged document, so commands written for the checkout also work from an install.
ARG is the file's `get_config(arg)` argument (a recipe name). Overrides are spelled as `ml_collections`'
config flags spell them, `--config.KEY=VALUE`, and are applied as those flags apply them: the value is
parsed by the type of the field it replaces, and the config is locked, so an unknown field or a wrong type
is an error. Errors are ValueError with one line that names the spec or the override.

Loading a config imports `ml_collections`, absl flags and the recipe builder, never the training stack.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence

import ml_collections

CONFIG_PACKAGE = "lsm_jax.configs"
EXAMPLE = "lsm_light:tiny"


def split_spec(spec: str) -> tuple[str, str]:
    """`SOURCE[:ARG]` -> (SOURCE, ARG); a Windows drive letter is not taken for a separator."""
    head, sep, tail = spec.rpartition(":")
    if not sep or (len(head) == 1 and head.isalpha()) or "/" in tail or "\\" in tail:
        return spec, ""
    return head, tail


def packaged_names() -> list[str]:
    """The packaged config documents, e.g. ['lsm', 'lsm_light', 'lsm_s', 'studies/ring_settings', ...]."""
    root = _package_dir()
    if root is None:
        return []
    return sorted(str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.py")
                  if not p.name.startswith("_"))


def _package_dir() -> Path | None:
    spec = importlib.util.find_spec(CONFIG_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def config_path(source: str) -> Path:
    """The file a spec's SOURCE names: an existing path, else a packaged document (by name, or by its
    checkout path `configs/NAME.py` when no such file is here); ValueError otherwise."""
    path = Path(source)
    if path.is_file():
        return path
    root = _package_dir()
    if root is not None and not path.is_absolute():
        parts = Path(source[:-3] if source.endswith(".py") else source).parts
        for rel in (parts, parts[1:] if parts[:1] == ("configs",) else ()):
            if not rel or ".." in rel or rel[-1].startswith("_"):
                continue
            candidate = root.joinpath(*rel[:-1], rel[-1] + ".py")
            if candidate.is_file():
                return candidate
    known = ", ".join(packaged_names()) or "none found"
    raise ValueError(f"--config: no config file or packaged config {source!r} "
                     f"(expected a .py file, or one of: {known}; e.g. {EXAMPLE})")


def resolve(spec: str) -> str:
    """`SOURCE[:ARG]` with SOURCE replaced by the file it names (what absl's config flag reads)."""
    source, arg = split_spec(spec)
    path = str(config_path(source))
    return f"{path}:{arg}" if arg else path


def load_module(spec: str):
    """The config document itself (its RECIPES, STUDY and get_config), executed once per call."""
    path = config_path(split_spec(spec)[0])
    module_spec = importlib.util.spec_from_file_location(f"lsm_config_{path.stem}", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def check_overrides(overrides: Sequence[str]) -> None:
    bad = [o for o in overrides if not o.startswith("--config.") or "=" not in o]
    if bad:
        raise ValueError(f"{bad[0]}: expected --config.KEY=VALUE")


def load_config(spec: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """The config of `spec` with `--config.KEY=VALUE` (or `--config.KEY VALUE`) overrides applied
    (typed, locked)."""
    overrides = normalise(list(overrides))
    check_overrides(overrides)
    return parse_flags([f"--config={spec}", *overrides]).config


def parse_flags(args: Sequence[str], workdir: bool = False):
    """absl flag values of `--config=SPEC [--config.KEY=VALUE ...] [--workdir=DIR]` (no program name);
    ValueError in one line naming the flag that fails."""
    from absl import flags
    from ml_collections import config_flags

    args = [f"--config={resolve(a.split('=', 1)[1])}" if a.startswith("--config=") else a
            for a in normalise(list(args))]

    def parse(argv):
        fv = flags.FlagValues()
        # sys_argv: config_flags finds the override flags there (default: the process's sys.argv).
        config_flags.DEFINE_config_file("config", None, "config file and recipe", flag_values=fv,
                                        lock_config=True, sys_argv=["lsm", *argv])
        if workdir:
            flags.DEFINE_string("workdir", None, "directory for checkpoints, logs and the exported model",
                                flag_values=fv)
        fv(["lsm", *argv])
        _ = fv.config  # config_flags defers some load errors to first use
        return fv

    try:
        return parse(args)
    except Exception as err:  # config_flags raises several types: name the flag that fails alone
        base = [a for a in args if a.startswith("--config=")]
        culprit = next((a for a in args if a.startswith("--config.") and _fails(parse, base + [a])), None)
        if isinstance(err, (AttributeError, KeyError)) and culprit:
            hint = str(err).strip("'\"").split("\\n")[-1].split("\n")[-1]
            raise ValueError(f"{culprit}: no such config field ({hint})") from None
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = lines[-1] if any("Traceback" in line for line in lines) else " ".join(lines)
        raise ValueError(f"{culprit}: {detail}" if culprit else detail) from None


def normalise(argv: list[str]) -> list[str]:
    """`--config X` -> `--config=X` and `--config.KEY VALUE` -> `--config.KEY=VALUE`, so that every check sees
    one form."""
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        if (a == "--config" or (a.startswith("--config.") and "=" not in a)) and i + 1 < len(argv):
            out.append(f"{a}={argv[i + 1]}")
            i += 2
            continue
        out.append(a)
        i += 1
    return out


def _fails(parse, args) -> bool:
    try:
        parse(args)
    except Exception:
        return True
    return False


def recipes_of(spec: str) -> tuple[list[str], str]:
    """(recipe names, get_config's docstring) of a config document: its RECIPES table's names when it has
    one (what `get_config(arg)` accepts)."""
    module = load_module(spec)
    doc = (getattr(getattr(module, "get_config", None), "__doc__", "") or "").strip()
    return list(getattr(module, "RECIPES", {}) or {}), doc
