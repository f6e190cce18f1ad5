"""Test session set-up: 8 fake CPU devices, set before JAX initialises (mesh tests need them), and the
fixtures that several test modules share.

Shared fixtures (pytest finds them here; no test module imports another):

    compilation_cache   module scope, opt-in: JAX's persistent compilation cache at
                        fixture_training.CACHE_DIR, so each distinct program compiles once per session
                        (subprocesses too, through fixture_training.subprocess_env). A module turns it on
                        for all its tests with `pytestmark = pytest.mark.usefixtures("compilation_cache")`.

Plain helpers that tests call with arguments live in modules of their own: fixture_training
(micro_config, MICRO_OVERRIDES, subprocess_env, params_of), fixture_checkpoint, fixture_png.
"""

import os
import tempfile

os.environ["JAX_PLATFORMS"] = "cpu"
# Training runs cache compiled programs under the user cache folder by default (compile_cache_dir
# 'auto'): point that at a temporary folder so that tests never write into the real home.
os.environ["XDG_CACHE_HOME"] = os.path.join(tempfile.gettempdir(), "lsm_jax_test_user_cache")
_flag = "--xla_force_host_platform_device_count=8"
if _flag not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()
# XLA's CPU backend without LLVM's optimisations: the suite compiles hundreds of small programs and
# runs each a few times, so compiling is most of its time, and -O0 about halves it (a third off the
# CPU time of the network, bucket and tiling tests). The HLO program, what each test computes, is the
# same. Subprocesses inherit it; an XLA_FLAGS that sets a level already keeps its own.
if "xla_backend_optimization_level" not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += " --xla_backend_optimization_level=0"

import pytest  # noqa: E402

from fixture_training import CACHE_DIR  # noqa: E402  (no JAX import)


@pytest.fixture(autouse=True)
def _compile_cache_in_tmp(tmp_path_factory, monkeypatch):
    """The commands turn on JAX's persistent compile cache: keep it out of the real home."""
    monkeypatch.setenv("LSM_JAX_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "jax-cache"))


@pytest.fixture(scope="module")
def compilation_cache():
    """JAX's persistent compilation cache for one module (and its subprocesses): every run builds new
    jitted functions, and the cache compiles each distinct program once. The previous settings are put
    back for the other test modules."""
    import jax
    from jax.experimental.compilation_cache import compilation_cache as cc
    old = {k: getattr(jax.config, k) for k in ("jax_compilation_cache_dir",
                                               "jax_persistent_cache_min_compile_time_secs")}
    jax.config.update("jax_compilation_cache_dir", str(CACHE_DIR))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    cc.reset_cache()
    yield
    for key, value in old.items():
        jax.config.update(key, value)
    cc.reset_cache()
