"""requirements.lock (what `make setup` and CI install) agrees with requirements.txt and pyproject.toml.

requirements.txt and pyproject.toml hold minimum versions; requirements.lock pins the tested versions
with hashes (`make lock` writes it). These tests fail when a package they name is not pinned, when a pin
falls outside their range, or when a pin is not exact or carries no hash.
"""

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
LOCKED_EXTRAS = ('test', 'tpu')  # the extras `make setup` installs; `torch` stays optional
_HASH = re.compile(r'--hash=sha256:[0-9a-f]{64}\b')


def parse_lock(text):
    """{canonical name: (Version, number of hashes)} from a hashed pip requirements file.

    Raises ValueError for a line that is not an exact `name==version` pin.
    """
    pins = {}
    logical, current = [], ''
    for line in text.splitlines():
        line = line.strip()
        if not current and (not line or line.startswith('#')):
            continue
        if line.endswith('\\'):
            current += line[:-1] + ' '
            continue
        logical.append((current + line).strip())
        current = ''
    if current.strip():
        logical.append(current.strip())
    for entry in logical:
        spec = re.split(r'\s--hash=', ' ' + entry, maxsplit=1)[0].strip()
        spec = spec.split(' #', 1)[0].strip()
        req = Requirement(spec)
        specs = list(req.specifier)
        if len(specs) != 1 or specs[0].operator != '==' or '*' in specs[0].version:
            raise ValueError(f'not an exact pin: {spec!r}')
        name = canonicalize_name(req.name)
        if name in pins:
            raise ValueError(f'pinned twice: {name}')
        pins[name] = (Version(specs[0].version), len(_HASH.findall(entry)))
    return pins


def declared_requirements(requirements_txt, pyproject_toml):
    """The requirements the lock must cover: requirements.txt, the locked extras, the build's."""
    reqs = []
    for line in requirements_txt.splitlines():
        line = line.split('#', 1)[0].strip()
        if line:
            reqs.append(Requirement(line))
    project = tomllib.loads(pyproject_toml)
    for extra in LOCKED_EXTRAS:
        reqs += [Requirement(r) for r in project['project']['optional-dependencies'][extra]]
    reqs += [Requirement(r) for r in project['build-system']['requires']]
    return reqs


def lock_problems(lock_text, requirements_txt, pyproject_toml):
    """Everything wrong with the lock, as sentences (empty when it is consistent)."""
    try:
        pins = parse_lock(lock_text)
    except ValueError as e:
        return [str(e)]
    problems = [f'{name}=={version} has no sha256 hash' for name, (version, n) in pins.items() if n == 0]
    for req in declared_requirements(requirements_txt, pyproject_toml):
        name = canonicalize_name(req.name)
        if name not in pins:
            problems.append(f'{req} is required but requirements.lock does not pin {name}')
        elif not req.specifier.contains(pins[name][0], prereleases=True):
            problems.append(f'{name}=={pins[name][0]} in requirements.lock does not satisfy {req}')
    return problems


def _read(name):
    return (ROOT / name).read_text()


def test_lock_pins_every_requirement_with_hashes():
    problems = lock_problems(_read('requirements.lock'), _read('requirements.txt'), _read('pyproject.toml'))
    assert not problems, 'requirements.lock is out of date (run `make lock`):\n' + '\n'.join(problems)


def test_lock_pins_the_tested_jax():
    pins = parse_lock(_read('requirements.lock'))
    assert pins['jax'][0] == pins['jaxlib'][0]  # jax and jaxlib are released together


_GOOD_REQS = 'jax>=0.10.2\nnumpy>=2.0  # comment\n'
_PYPROJECT = """
[build-system]
requires = ["setuptools>=68"]
[project.optional-dependencies]
test = ["pytest>=8.0"]
tpu = ["libtpu>=0.0.52; sys_platform == 'linux' and platform_machine == 'x86_64'"]
torch = ["torch>=2.2"]
"""
_H = ' \\\n    --hash=sha256:' + 'a' * 64
_GOOD_LOCK = (
    '# header\njax==0.12.0.1' + _H + '\n    # via lsm-jax\nnumpy==2.5.5' + _H + _H + '\n'
    'pytest==9.2.0' + _H + "\nlibtpu==0.0.52 ; platform_machine == 'x86_64'" + _H + '\n'
    'setuptools==84.2.1' + _H + '\n'
)


def test_checker_accepts_a_consistent_lock():
    assert lock_problems(_GOOD_LOCK, _GOOD_REQS, _PYPROJECT) == []


@pytest.mark.parametrize('broken, message', [
    (_GOOD_LOCK.replace('numpy==2.5.5', 'scipy==1.18.1'), 'does not pin numpy'),
    (_GOOD_LOCK.replace('jax==0.12.0.1', 'jax==0.9.0'), 'jax==0.9.0 in requirements.lock does not satisfy'),
    (_GOOD_LOCK.replace('pytest==9.2.0' + _H, 'pytest==9.2.0'), 'pytest==9.2.0 has no sha256 hash'),
    (_GOOD_LOCK.replace('pytest==9.2.0', 'pytest>=9.2.0'), 'not an exact pin'),
    (_GOOD_LOCK.replace('setuptools==84.2.1' + _H + '\n', ''), 'does not pin setuptools'),
    (_GOOD_LOCK.replace('libtpu==0.0.52', 'libtpu==0.0.51'), 'libtpu==0.0.51 in requirements.lock'),
])
def test_checker_rejects_a_broken_lock(broken, message):
    problems = lock_problems(broken, _GOOD_REQS, _PYPROJECT)
    assert any(message in p for p in problems), problems
