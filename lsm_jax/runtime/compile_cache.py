"""JAX's persistent compilation cache, one folder for every command (train, study, upscale, evaluate).

A restarted or preempted training job, a study's next run and the next `upscale` read their compiled
programs from disk instead of compiling them again. The folder:

  'auto'  a cache folder JAX already has (`JAX_COMPILATION_CACHE_DIR`, `jax.config`), else
          $LSM_JAX_CACHE_DIR, else $XDG_CACHE_HOME/lsm-jax/jax, else ~/.cache/lsm-jax/jax;
  a path  that folder;
  ''      no cache for this process (`--no-cache`, `--config.compile_cache_dir=`).

A folder that cannot be created turns the cache off with a warning: a cache is never a reason to
fail a run.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import jax

# Cache every compile that takes a noticeable time: JAX's default of 1 s misses the small models.
MIN_COMPILE_SECONDS = 0.2


def user_cache_dir() -> Path:
    """<$XDG_CACHE_HOME or ~/.cache>/lsm-jax: the project's folder in the user cache."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "lsm-jax"


def default_dir() -> Path:
    """$LSM_JAX_CACHE_DIR, else <$XDG_CACHE_HOME or ~/.cache>/lsm-jax/jax."""
    if os.environ.get("LSM_JAX_CACHE_DIR"):
        return Path(os.environ["LSM_JAX_CACHE_DIR"])
    return user_cache_dir() / "jax"


def configure(setting: str | os.PathLike = "auto") -> str | None:
    """Points JAX's persistent cache at the folder `setting` names (see the module docstring);
    returns it, or None when the cache is off."""
    from jax.experimental.compilation_cache import compilation_cache as cc
    setting = str(setting)
    current = jax.config.jax_compilation_cache_dir
    if setting == "":
        if current and jax.config.jax_enable_compilation_cache:
            jax.config.update("jax_enable_compilation_cache", False)
            cc.reset_cache()
        return None
    path = current if setting == "auto" and current else str(default_dir() if setting == "auto" else Path(setting))
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        logging.getLogger(__name__).warning("compile cache off: cannot create %s (%s)", path, exc)
        return None
    if path != current or not jax.config.jax_enable_compilation_cache:
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_enable_compilation_cache", True)
        cc.reset_cache()  # the cache object is created once; let the next compile see the new path
    if jax.config.jax_persistent_cache_min_compile_time_secs > MIN_COMPILE_SECONDS:   # a lower one stays
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path
