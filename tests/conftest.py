"""Test session set-up: 8 fake CPU devices, set before JAX initialises (mesh tests need them)."""

import os

os.environ["JAX_PLATFORMS"] = "cpu"
_flag = "--xla_force_host_platform_device_count=8"
if _flag not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _flag).strip()

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _compile_cache_in_tmp(tmp_path_factory, monkeypatch):
    """The commands turn on JAX's persistent compile cache: keep it out of the real home."""
    monkeypatch.setenv("LSM_JAX_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "jax-cache"))
