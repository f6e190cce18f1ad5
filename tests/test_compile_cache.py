"""One persistent compilation cache for every command: where 'auto' points, a path, off, and a
folder that cannot be made."""

import jax
import pytest
from jax.experimental.compilation_cache import compilation_cache as cc

from lsm_jax.runtime import compile_cache

NAMES = ("jax_compilation_cache_dir", "jax_enable_compilation_cache", "jax_persistent_cache_min_compile_time_secs")


@pytest.fixture
def jax_settings():
    old = {k: getattr(jax.config, k) for k in NAMES}
    yield
    for key, value in old.items():
        jax.config.update(key, value)
    cc.reset_cache()


def test_auto_keeps_jax_setting_else_the_user_cache(tmp_path, monkeypatch, jax_settings):
    jax.config.update("jax_compilation_cache_dir", str(tmp_path / "set_by_jax"))
    assert compile_cache.configure("auto") == str(tmp_path / "set_by_jax") and jax.config.jax_enable_compilation_cache
    jax.config.update("jax_compilation_cache_dir", None)
    monkeypatch.setenv("LSM_JAX_CACHE_DIR", str(tmp_path / "env"))
    assert compile_cache.configure() == str(tmp_path / "env") and (tmp_path / "env").is_dir()
    jax.config.update("jax_compilation_cache_dir", None)
    monkeypatch.delenv("LSM_JAX_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compile_cache.configure("auto") == str(tmp_path / "xdg" / "lsm-jax" / "jax")
    assert jax.config.jax_compilation_cache_dir == str(tmp_path / "xdg" / "lsm-jax" / "jax")


def test_a_path_off_and_an_uncreatable_folder(tmp_path, caplog, jax_settings):
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    assert compile_cache.configure(tmp_path / "c") == str(tmp_path / "c")
    assert jax.config.jax_persistent_cache_min_compile_time_secs == compile_cache.MIN_COMPILE_SECONDS
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)      # a lower setting stays
    compile_cache.configure(tmp_path / "c")
    assert jax.config.jax_persistent_cache_min_compile_time_secs == 0.0
    assert compile_cache.configure("") is None and not jax.config.jax_enable_compilation_cache
    (tmp_path / "file").write_text("not a folder")
    assert compile_cache.configure(tmp_path / "file" / "cache") is None
    assert "compile cache off: cannot create" in caplog.text
