"""The package layout keeps its promises: commands only at the top, library code that imports no command
and reads nothing outside the package, light configs, one name per module, the `packages` list of
pyproject.toml equal to the tree, short files, and an installed wheel that trains from any directory.

The static rules read the sources with `ast` (no import), over the package's modules: `lsm_jax/**.py`
and the folders pyproject.toml maps into it (`configs/` -> lsm_jax.configs, `data/` -> lsm_jax.bundled).
"""

from __future__ import annotations

import ast
import functools
import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from fixture_training import MICRO_OVERRIDES, subprocess_env

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SETUPTOOLS = PYPROJECT["tool"]["setuptools"]
MAPPED = SETUPTOOLS.get("package-dir", {})           # {'lsm_jax.configs': 'configs', ...}


def _sources(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def package_roots() -> dict[str, Path]:
    """{dotted package name: its folder in the checkout} of the top package and the mapped ones."""
    return {"lsm_jax": REPO / "lsm_jax", **{name: REPO / folder for name, folder in MAPPED.items()}}


@functools.cache
def modules() -> dict[str, Path]:
    """Every module of the package as installed, {dotted name: file in the checkout}."""
    out = {}
    for package, root in package_roots().items():
        for path in _sources(root):
            parts = path.relative_to(root).with_suffix("").parts
            out[".".join((package, *parts)).removesuffix(".__init__")] = path
    return out


COMMANDS = {name for name, path in modules().items()
            if name.count(".") == 1 and path.parent == REPO / "lsm_jax" and path.name != "__init__.py"}
LIBRARY = {name: path for name, path in modules().items() if name not in COMMANDS}


def _rel(path: Path) -> str:
    return str(path.relative_to(REPO))


@functools.cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


# ------------------------------------------------------------------------ commands only at the top

def _is_main_guard(node: ast.AST) -> bool:
    return (isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
            and {getattr(n, "id", getattr(n, "value", None)) for n in [node.test.left, *node.test.comparators]}
            == {"__name__", "__main__"})


def _imported(tree: ast.Module, module: str) -> set[str]:
    """Every module an `import` statement anywhere in `tree` (functions too) names, relative ones resolved
    against `module`; `from X import Y` yields both X and X.Y (Y may be a submodule)."""
    out = set()
    package = module.split(".") + ([""] if modules()[module].name == "__init__.py" else [])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[:len(package) - node.level], *([base] if base else [])])
            out |= {base, *(f"{base}.{a.name}" for a in node.names)}
    return out


@pytest.mark.parametrize("name", sorted(LIBRARY))
def test_library_modules_have_no_argparse_and_no_main_block(name):
    """Command-line parsing and `if __name__ == "__main__"` live in the command modules at the top
    (lsm_jax/<command>.py); every module of a subpackage is library code."""
    tree = _tree(LIBRARY[name])
    assert "argparse" not in {m.split(".")[0] for m in _imported(tree, name)}, f"{name} imports argparse"
    assert not any(_is_main_guard(n) for n in ast.walk(tree)), f"{name} has an `if __name__ == '__main__'` block"


def test_every_top_level_module_is_a_command_and_every_command_an_entry_point():
    scripts = PYPROJECT["project"]["scripts"]
    targets = {}
    for script, target in scripts.items():
        module, _, func = target.partition(":")
        assert func == "main" and module in COMMANDS, f"[project.scripts] {script} = {target!r}: not a top-level main"
        targets[module] = script
    assert sorted(targets) == sorted(COMMANDS), f"commands without an entry point: {sorted(COMMANDS - set(targets))}"
    for name in COMMANDS:
        tree = _tree(modules()[name])
        assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body), f"{name} has no main()"


@pytest.mark.parametrize("name", sorted(LIBRARY))
def test_library_code_imports_no_command_module(name):
    """No library module (a subpackage's, `lsm_jax/__init__.py`, a config document) imports a command,
    not even inside a function: commands depend on the library, never the other way round."""
    found = _imported(_tree(LIBRARY[name]), name) & COMMANDS
    assert not found, f"{name} imports the command module(s) {sorted(found)}"


# ------------------------------------------------------------------- no path outside the package

_PATH_CALLS = {"Path", "PosixPath", "WindowsPath", "open", "join", "joinpath", "spec_from_file_location",
               "isfile", "isdir", "exists", "listdir", "scandir", "glob"}


def _climb(node: ast.AST, names: dict[str, float]) -> float | None:
    """How many folders above its own file an expression built from `__file__` points (0: the file's
    folder level, i.e. the file itself or a sibling; None: not built from `__file__`)."""
    if isinstance(node, ast.Name):
        return 0 if node.id == "__file__" else names.get(node.id)
    if isinstance(node, ast.Attribute):
        up = _climb(node.value, names)
        return None if up is None else up + (node.attr == "parent")
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Attribute) and node.value.attr == "parents":
        up = _climb(node.value.value, names)
        index = node.slice.value if isinstance(node.slice, ast.Constant) else -1
        index = index if isinstance(index, int) and index >= 0 else float("inf")   # parents[-1], parents[i]
        return None if up is None else up + index + 1
    if isinstance(node, ast.Call):
        func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
        args = [a for a in (*node.args, node.func.value if isinstance(node.func, ast.Attribute) else None) if a]
        ups = [u for u in (_climb(a, names) for a in args) if u is not None]
        if not ups:
            return None
        dots = sum(str(a.value).replace("\\", "/").split("/").count("..") for a in node.args
                   if isinstance(a, ast.Constant) and isinstance(a.value, str))
        return max(ups) + dots + (func == "dirname")
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
        up = _climb(node.left, names)
        right = node.right.value if isinstance(node.right, ast.Constant) and isinstance(node.right.value, str) else ""
        return None if up is None else up + right.replace("\\", "/").split("/").count("..")
    return None


def _path_escapes(path: Path, root: Path) -> list[str]:
    """Where the module at `path` (in the package folder `root`) names a path outside the package."""
    tree = _tree(path)
    depth = len(path.relative_to(root).parts)   # levels from the file up to the package folder itself
    names: dict[str, float] = {}
    for node in tree.body:                      # module-level names bound to __file__-based paths
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            up = _climb(node.value, names)
            if up is not None:
                names[node.targets[0].id] = up
    outside = {p.name for p in REPO.iterdir() if not p.name.startswith(".")} - {"lsm_jax"}
    problems = []
    for node in ast.walk(tree):
        up = _climb(node, names)
        if up is not None and up > depth:
            problems.append(f"line {node.lineno}: {ast.unparse(node)} leaves the package")
        # A relative path that starts at a checkout folder (configs/, data/, tests/, ...) as the first
        # argument of a path function or the left side of `/` means "the checkout's folder".
        starts = []
        if isinstance(node, ast.Call):
            func = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            starts = node.args[:1] if func in _PATH_CALLS else []
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            starts = [node.left]
        for start in starts:
            if isinstance(start, ast.Constant) and isinstance(start.value, str):
                head = start.value.replace("\\", "/").lstrip("./").split("/")[0]
                if head in outside:
                    problems.append(f"line {node.lineno}: {ast.unparse(node)} reads the checkout's {head}/")
    return problems


@pytest.mark.parametrize("name", sorted(modules()))
def test_no_module_reads_a_path_outside_the_package(name):
    """An installed package has no checkout around it, so no module may name a path outside the package.
    Two static rules, over every module (commands too), with the package folder being `lsm_jax/` or the
    mapped folder the module lies in (`configs/`, `data/`):

    1. a path built from `__file__` (`Path(__file__).parents[N]`, `.parent`, `os.path.dirname`, `/ ".."`,
       also through a module-level name such as `REPO = Path(__file__).resolve().parents[1]`) climbs at
       most up to the module's package folder; a file of lsm_jax/training/ may reach lsm_jax/, not the
       checkout;
    2. no string that starts at a checkout folder other than lsm_jax/ (`"configs/..."`, `"data/Set5"`,
       `"tests"`, ...) is the start of a path: the first argument of `Path`/`open`/`os.path.join`/...,
       or the left side of `/` (a `PurePath`, which never touches the disk, may spell one). Such strings may still be values (the recipes' default
       `eval.dirs=["data/Set5"]` is a name that `lsm_jax.evaluation.benchmarks` resolves to the bundled
       copy) and docs.
    """
    path = modules()[name]
    root = next(r for r in package_roots().values() if r in path.parents)
    problems = _path_escapes(path, root)
    assert not problems, f"{_rel(path)}: " + "; ".join(problems)


# ------------------------------------------------------------------------------ configs are light

def _modules_after(code: str) -> set[str]:
    """The modules loaded by a fresh interpreter after running `code`."""
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_loading_a_config_imports_neither_grain_nor_the_training_stack():
    code = ("from lsm_jax.training.config_loader import load_config\n"
            "for name in ('lsm', 'lsm_s', 'lsm_light'):\n"
            "    for arg in ('x2_scratch', 'x4_finetune', 'tiny'):\n"
            "        load_config(f'{name}:{arg}')\n"
            "load_config('studies/ring_settings', ['--config.model.rmin=0.4'])\n")
    loaded = _modules_after(code)
    heavy = {"grain", "optax", "orbax", "flax", "lsm_jax.training.loop", "lsm_jax.training.step",
             "lsm_jax.data.pipeline"}
    assert not heavy & loaded, sorted(heavy & loaded)


# ------------------------------------------------------------------------ names and the packages list

def test_the_packages_list_is_the_tree():
    """pyproject.toml's explicit `packages` are exactly the folders that hold Python modules under
    lsm_jax/ and under the mapped folders, each with an `__init__.py` (a folder missing from the list
    would be left out of the wheel)."""
    tree = {}
    for package, root in package_roots().items():
        for folder in {p.parent for p in _sources(root)}:
            tree[".".join((package, *folder.relative_to(root).parts))] = folder
    no_init = sorted(_rel(f) for f in tree.values() if not (f / "__init__.py").is_file())
    assert not no_init, f"folders of modules without __init__.py: {no_init}"
    assert sorted(SETUPTOOLS["packages"]) == sorted(tree)


def test_no_two_modules_share_a_file_name():
    """One name, one module: `sources.py` in two packages reads as one thing in a traceback, an import
    line or a search. `__init__.py` excepted; the config documents too (their names are what `--config`
    takes, e.g. `studies/semantics`, not module names)."""
    by_name: dict[str, list[str]] = {}
    for path in _sources(REPO / "lsm_jax"):
        if path.name != "__init__.py":
            by_name.setdefault(path.name, []).append(_rel(path))
    same = {name: paths for name, paths in by_name.items() if len(paths) > 1}
    assert not same, same


@pytest.mark.parametrize("path", sorted(str(p.relative_to(REPO)) for p in _sources(REPO / "lsm_jax")))
def test_no_module_is_over_400_lines(path):
    n = len((REPO / path).read_text().splitlines())
    assert n <= 400, f"{path} has {n} lines: split it by concern"


# ------------------------------------------------------------------------------- from an install

_RECORD_MODULES = """import atexit, json, os, sys
def _record():
    with open(os.environ["LSM_TEST_MODULES"], "a") as fh:
        fh.write(json.dumps({n: m.__file__ for n, m in list(sys.modules.items())
                             if isinstance(getattr(m, "__file__", None), str)}) + "\\n")
atexit.register(_record)
"""

_CHECKS = """import json
from lsm_jax import demo
from lsm_jax.evaluation.benchmarks import resolve_benchmark_dir
from lsm_jax.training.config_loader import config_path
print(json.dumps(dict(eval_dir=str(resolve_benchmark_dir("data/Set5")),
                      demo_dirs=list(demo.demo_config(2, ["--config.batch_size=4"]).eval.dirs),
                      config=str(config_path("configs/lsm_light.py")))))
"""


def test_the_installed_wheel_trains_from_any_directory(tmp_path):
    """A wheel built from a copy of the sources, installed with `pip install --target`, run by this venv's
    python from a folder outside the checkout: `python -m lsm_jax.train --config lsm_light:tiny` trains 2
    steps of the training tests' micro network (same programs: the persistent compilation cache serves
    both), the recipes' `data/Set5` and the demo's validation folder are the bundled Set5, a checkout
    spelling of a config (`configs/lsm_light.py`) finds the packaged one, and every lsm_jax module that
    ran came from the install."""
    source = tmp_path / "source"
    for name in ("lsm_jax", *MAPPED.values()):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", PYPROJECT["project"]["readme"],
                 *PYPROJECT["tool"]["setuptools"]["dynamic"]["dependencies"]["file"]):
        shutil.copy(REPO / name, source / name)
    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(source), "-w", str(tmp_path / "wheel")],
                   check=True, capture_output=True, cwd=tmp_path)
    target = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(target),
                    *map(str, (tmp_path / "wheel").glob("*.whl"))], check=True, capture_output=True)
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "sitecustomize.py").write_text(_RECORD_MODULES)
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    record = tmp_path / "modules.jsonl"
    env = dict(subprocess_env(), PYTHONPATH=f"{target}{os.pathsep}{probe}", LSM_TEST_MODULES=str(record))

    train = subprocess.run([sys.executable, "-m", "lsm_jax.train", "--config", "lsm_light:tiny", "--workdir", "W",
                            "--config.total_steps=2", "--config.checkpoint.every=2", *MICRO_OVERRIDES],
                           cwd=workdir, env=env, capture_output=True, text=True, timeout=600)
    assert train.returncode == 0, train.stdout[-2000:] + train.stderr[-3000:]
    assert json.loads((workdir / "W/export/latest/train_info.json").read_text())["step"] == 2
    checks = subprocess.run([sys.executable, "-c", _CHECKS], cwd=workdir, env=env, capture_output=True, text=True)
    assert checks.returncode == 0, checks.stderr[-3000:]
    found = json.loads(checks.stdout.strip().splitlines()[-1])
    set5 = target / "lsm_jax/bundled/Set5"
    assert Path(found["eval_dir"]) == set5 and found["demo_dirs"] == [str(set5)]
    assert Path(found["config"]) == target / "lsm_jax/configs/lsm_light.py"
    # Every module of both processes came from the install (or the venv), none from the checkout.
    ran = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(ran) == 2 and Path(ran[0]["__main__"]) == target / "lsm_jax/train.py"
    assert str(target / "lsm_jax/configs/lsm_light.py") in ran[0].values()       # the config it trained
    assert Path(ran[0]["lsm_jax.training.loop"]).is_relative_to(target)
    venv = Path(sys.prefix)
    from_checkout = sorted({f for run in ran for f in run.values()
                            if Path(f).is_relative_to(REPO) and not Path(f).is_relative_to(venv)})
    assert not from_checkout, from_checkout
