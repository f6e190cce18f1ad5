"""The package layout keeps its promises: light configs, no command imported by library code, short files."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMMAND_MODULES = ("lsm_jax.evaluate", "lsm_jax.inference.image_files", "lsm_jax.porting.checkpoint",
                   "lsm_jax.data.lr_images", "lsm_jax.train", "lsm_jax.demo")


def _modules_after(code: str) -> set[str]:
    """The modules loaded by a fresh interpreter after running `code`."""
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_loading_a_config_imports_neither_grain_nor_the_training_stack():
    code = ("import importlib.util\n"
            "for name in ('lsm', 'lsm_s', 'lsm_light'):\n"
            "    spec = importlib.util.spec_from_file_location(name, f'configs/{name}.py')\n"
            "    mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
            "    for arg in ('x2_scratch', 'x4_finetune', 'tiny'):\n"
            "        mod.get_config(arg)\n")
    loaded = _modules_after(code)
    heavy = {"grain", "optax", "orbax", "flax", "lsm_jax.training.loop", "lsm_jax.training.step",
             "lsm_jax.data.pipeline"}
    assert not heavy & loaded, sorted(heavy & loaded)


def test_library_code_imports_no_command_module():
    loaded = _modules_after("import lsm_jax.training.loop, lsm_jax.training.validation, lsm_jax.inference.forward")
    assert not set(COMMAND_MODULES) & loaded, sorted(set(COMMAND_MODULES) & loaded)


@pytest.mark.parametrize("path", sorted(str(p.relative_to(REPO)) for p in (REPO / "lsm_jax").rglob("*.py")))
def test_no_module_is_over_400_lines(path):
    n = len((REPO / path).read_text().splitlines())
    assert n <= 400, f"{path} has {n} lines: split it by concern"
