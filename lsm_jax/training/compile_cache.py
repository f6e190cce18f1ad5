"""JAX's persistent compilation cache for training runs: a restarted or preempted job reads the
compiled step from disk instead of compiling it again.

`config.compile_cache_dir`: 'auto' keeps a cache directory JAX already has (set through
`JAX_COMPILATION_CACHE_DIR` or `jax.config`), else uses `<user cache>/lsm_jax/jax`
($XDG_CACHE_HOME or ~/.cache); a path uses that path; '' turns the cache off for this process.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax


def default_dir() -> Path:
    """<user cache folder>/lsm_jax/jax."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "lsm_jax" / "jax"


def configure(setting: str) -> str | None:
    """Points JAX's persistent cache at the directory `setting` names; returns it (None: off)."""
    from jax.experimental.compilation_cache import compilation_cache as cc
    current = jax.config.jax_compilation_cache_dir
    if setting == "":
        if current:
            jax.config.update("jax_enable_compilation_cache", False)
            cc.reset_cache()
        return None
    path = current if setting == "auto" and current else str(default_dir() if setting == "auto" else Path(setting))
    if path != current or not jax.config.jax_enable_compilation_cache:
        Path(path).mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_enable_compilation_cache", True)
        cc.reset_cache()  # the cache object is created once; let the next compile see the new path
    return path
