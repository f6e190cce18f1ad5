"""Test session set-up: 8 fake CPU devices, set before JAX initialises (mesh tests need them)."""

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


@pytest.fixture(autouse=True)
def _compile_cache_in_tmp(tmp_path_factory, monkeypatch):
    """The commands turn on JAX's persistent compile cache: keep it out of the real home."""
    monkeypatch.setenv("LSM_JAX_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "jax-cache"))
