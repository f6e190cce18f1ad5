"""Model sources (`lsm_jax.porting.model_source`, `releases`, `download`, `pth`): released names through a
hub on 127.0.0.1, hf://, URLs, weights files converted on the fly and cached by sha256, torch-free .pth
reading, and the one-line errors.

The hub is `fixture_hub.FakeHub`: the listing and resolve endpoints `huggingface_hub` calls, pointed at with
HF_ENDPOINT. The weights are the golden tiny x2 network's state_dict (`fixture_checkpoint`), served under the
released repository's name, so the registry needs no hook.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import io
import os
import pickle
import socket
import sys
import types
import zipfile

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")   # before huggingface_hub is imported: no user-agent probe

import numpy as np
import pytest
from PIL import Image

from fixture_checkpoint import write_reference_files
from fixture_hub import FakeHub
from fixture_png import rng_img
from lsm_jax.porting.pth import PthError, read_pth
from lsm_jax.porting.model_source import ModelSourceError, resolve
from lsm_jax.porting.releases import HUB_REPO, NAMES, match_release_files

pytestmark = pytest.mark.usefixtures("compilation_cache")

WEIGHTS_NAME = "LSM_light_x2.npz"
DECOYS = {"README.md": b"# LSM", "LSM_x2.pth": b"decoy", "LSM_S_x2.pth": b"decoy", "LSM_light_x4.pth": b"decoy",
          "options/test_LSM_light_x2.yml": b"network_g: {}"}


@pytest.fixture(scope="module")
def weights_bytes(tmp_path_factory) -> bytes:
    weights, _ = write_reference_files(tmp_path_factory.mktemp("ref"))
    return weights.read_bytes()


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Every cache in tmp: ours (XDG_CACHE_HOME) and huggingface_hub's (HF_HOME); its telemetry off."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_TELEMETRY", True)
    return tmp_path / "cache" / "lsm-jax" / "models"


@pytest.fixture
def hub(env, weights_bytes, monkeypatch):
    with FakeHub({HUB_REPO: {WEIGHTS_NAME: weights_bytes, **DECOYS}},
                 files={WEIGHTS_NAME: weights_bytes}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        yield server


def _entries(models) -> list[str]:
    """What the model cache holds besides refs/ (converted folders, leftovers)."""
    return sorted(p.name for p in models.iterdir() if p.name != "refs") if models.exists() else []


def _image(tmp_path):
    Image.fromarray(rng_img((7, 5, 3), seed=21)).save(tmp_path / "a.png")
    return tmp_path / "a.png"


# ---------------------------------------------------------------------------------------------
# Names of released files


@pytest.mark.parametrize("filename, variant, scale", [
    ("LSM_light_lightSR_x2.pth", "lsm_light", 2), ("LSM_S_SR_x3.pth", "lsm_s", 3), ("LSM_SR_x4.pth", "lsm", 4),
    ("LSM_light_x4.pth", "lsm_light", 4), ("lsm-light-X4.safetensors", "lsm_light", 4),
    ("LSMlight_x3.pth", "lsm_light", 3), ("light/x2/net_g.pth", "lsm_light", 2),
    ("net_g_LSM_light_x4_500000.pth", "lsm_light", 4), ("LSM_S_x2.pth", "lsm_s", 2), ("lsms-x3.pth", "lsm_s", 3),
    ("LSM_small_4.pth", "lsm_s", 4), ("LSM_x4.pth", "lsm", 4), ("LSM_X2.PTH", "lsm", 2),
    ("classical/LSM_4.pth", "lsm", 4), ("LSMx3.pth", "lsm", 3), ("LSM_SR_x2.pth", "lsm", 2),
    ("LSM_DIV2K_x4.pth", "lsm", 4),
])
def test_release_file_names_are_matched(filename, variant, scale):
    others = [(v, s) for v in ("lsm", "lsm_s", "lsm_light") for s in (2, 3, 4) if (v, s) != (variant, scale)]
    assert match_release_files([filename], variant, scale) == [filename]
    assert all(match_release_files([filename], v, s) == [] for v, s in others), filename


def test_release_matching_skips_other_files_and_prefers_safetensors():
    files = ["README.md", "LSM_light_x4.yml", "LSM_light_x4.pth", "LSM_light_x4.safetensors", "LSM_x4.pth"]
    assert match_release_files(files, "lsm_light", 4) == ["LSM_light_x4.safetensors"]
    assert match_release_files(files, "lsm", 4) == ["LSM_x4.pth"]        # not LSM_light
    for variant, scale in (("lsm", 4), ("lsm", 2), ("lsm_light", 4), ("lsm_s", 4)):   # names that say two things
        assert match_release_files(["LSM_x2_x4.pth", "LSM_light_s_x4.pth"], variant, scale) == []


def test_unknown_names_list_the_nine(env):
    with pytest.raises(ModelSourceError) as e:
        resolve("lsm_xl_x4")
    assert all(name in str(e.value) for name in NAMES) and len(NAMES) == 9 and "\n" not in str(e.value)
    with pytest.raises(ModelSourceError, match="no such file or folder"):
        resolve("missing/weights.pth")


# ---------------------------------------------------------------------------------------------
# The hub, end to end through the commands


def test_released_name_downloads_converts_caches_and_runs(hub, env, tmp_path, capsys):
    from lsm_jax.upscale import main
    img = _image(tmp_path)
    assert main(["-i", str(img), "-o", str(tmp_path / "o1"), "--model", "lsm_light_x2", "-q"]) == 0
    assert hub.count("GET", "/tree/") == 1 and hub.count("GET", f"/resolve/main/{WEIGHTS_NAME}") == 1
    assert not any("decoy" in p or p.endswith(".pth") for _, p in hub.requests if "/resolve/" in p)
    sha = hashlib.sha256(hub.repos[HUB_REPO][WEIGHTS_NAME]).hexdigest()
    assert _entries(env) == [sha] and (env / sha / "source.json").is_file()
    assert capsys.readouterr().err == ""                                   # -q: nothing but errors
    # Second run: the cache, without a single request.
    before = len(hub.requests)
    assert main(["-i", str(img), "-o", str(tmp_path / "o2"), "--model", "LSM-light-x2"]) == 0
    assert len(hub.requests) == before
    assert (tmp_path / "o1" / "a_x2.png").read_bytes() == (tmp_path / "o2" / "a_x2.png").read_bytes()
    err = capsys.readouterr()
    assert "model lsm_light_x2 (LSM x2): loaded" in err.err and "[1/1] a.png 5x7 -> a_x2.png" in err.err
    assert "MP out; compile" in err.out and " run " in err.out
    import lsm_jax
    model = lsm_jax.load_model("lsm_light_x2")                              # the API takes the same names
    assert model.scale == 2 and len(hub.requests) == before


def test_hf_url_and_errors_that_list_the_repository(hub, env):
    got = resolve(f"hf://{HUB_REPO}/{WEIGHTS_NAME}")
    assert got.converted and got.label == "LSM_light_x2"
    with pytest.raises(ModelSourceError) as e:
        resolve(f"hf://{HUB_REPO}/nope.pth")
    assert "no file 'nope.pth'" in str(e.value) and "LSM_S_x2.pth" in str(e.value)
    hub.repos[HUB_REPO]["lsm-light-X2.safetensors"] = b"second"
    with pytest.raises(ModelSourceError) as e:
        resolve("lsm_light_x2")   # two files now match: both are named, and what to do
    assert "2 files match" in str(e.value) and "lsm-light-X2.safetensors" in str(e.value)
    assert f"--model hf://{HUB_REPO}/FILE" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ModelSourceError, match="no file matches lsm_s x3.*has: .*README.md"):
        resolve("lsm_s_x3")
    with pytest.raises(ModelSourceError, match="no such repository"):
        resolve("hf://someone/else/x.pth")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_network_is_one_line_with_the_manual_download(env, monkeypatch, tmp_path):
    from lsm_jax.upscale import main
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    with pytest.raises(SystemExit) as e:
        main(["-i", str(_image(tmp_path)), "-o", str(tmp_path / "o"), "--model", "lsm_light_x4"])
    msg = str(e.value.code)
    assert msg.startswith("lsm-upscale: error: cannot reach the Hugging Face hub") and "\n" not in msg
    assert f"{endpoint}/{HUB_REPO}" in msg and "--checkpoint FILE" in msg and "lsm_light x4" in msg
    assert _entries(env) == [] and not (tmp_path / "o" / "a_x4.png").exists()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelSourceError, match="HF_HUB_OFFLINE is set.*--checkpoint FILE"):
        resolve("lsm_x4")


@pytest.mark.parametrize("mode, message", [("garbage", "is damaged"), ("cut", "failed")])
def test_damaged_or_cut_download_leaves_nothing(hub, env, mode, message):
    hub.mode[WEIGHTS_NAME] = mode
    with pytest.raises(ModelSourceError) as e:
        resolve("lsm_light_x2")
    assert message in str(e.value) and "nothing was cached" in str(e.value) and "\n" not in str(e.value)
    assert _entries(env) == [] and not list(env.rglob("*.json"))       # no entry, no ref, no temporary folder
    assert not list(env.rglob("*.incomplete")) and not list(env.rglob("*.part"))
    hub.mode.clear()                                 # the next run downloads afresh and succeeds
    assert resolve("lsm_light_x2").converted


def test_https_url_with_its_sha256(hub, env):
    data = hub.files[WEIGHTS_NAME]
    url = f"{hub.endpoint}/files/{WEIGHTS_NAME}"
    got = resolve(f"{url}#sha256={hashlib.sha256(data).hexdigest()}")
    assert got.converted and got.sha256 == hashlib.sha256(data).hexdigest()
    assert resolve(url).path == got.path and hub.count("GET", "/files/") == 1     # recorded: no second download
    with pytest.raises(ModelSourceError, match="damaged"):
        resolve(f"{hub.endpoint}/files/{WEIGHTS_NAME}?v=2#sha256={'0' * 64}")
    hub.mode[WEIGHTS_NAME] = "cut"
    with pytest.raises(ModelSourceError, match="cut short|failed"):
        resolve(f"{url}?v=3")
    with pytest.raises(ModelSourceError, match="only https://"):
        resolve("http://example.com/LSM_x4.pth")         # refused before any connection
    assert _entries(env) == [got.sha256]


# ---------------------------------------------------------------------------------------------
# Local weights files


def test_weights_file_is_converted_once_by_hash(env, tmp_path, weights_bytes):
    weights = tmp_path / "w" / "my_model.npz"
    weights.parent.mkdir()
    weights.write_bytes(weights_bytes)
    first = resolve(weights)
    assert first.converted and first.label == "my_model" and first.path.parent == env
    copy = tmp_path / "copy.npz"
    copy.write_bytes(weights_bytes)
    again = resolve(copy)                               # another file, the same bytes: the same entry
    assert not again.converted and again.path == first.path
    with pytest.raises(ModelSourceError, match="this is the config of a checkpoint folder; pass the folder"):
        resolve(first.path / "config.json")
    assert resolve(first.path).path == first.path       # a checkpoint folder is used as it is
    with pytest.raises(ModelSourceError, match=r"not an lsm-jax checkpoint folder.*holds weights \(my_model.npz\)"):
        resolve(weights.parent)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not weights")
    with pytest.raises(ModelSourceError, match="bad.safetensors: cannot read weights"):
        resolve(bad)
    assert _entries(env) == [first.sha256]


# ---------------------------------------------------------------------------------------------
# .pth without PyTorch


_STORAGES = {"float32": "FloatStorage", "float64": "DoubleStorage", "float16": "HalfStorage",
             "int64": "LongStorage", "int32": "IntStorage", "uint8": "ByteStorage", "bool": "BoolStorage"}


@contextlib.contextmanager
def _fake_torch():
    """Stand-ins for the globals `torch.save` pickles, present only while pickling."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    for name in _STORAGES.values():
        setattr(torch, name, type(name, (), {"__module__": "torch"}))

    def _rebuild_tensor_v2(*args):
        raise AssertionError("not called")

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch, "torch._utils": utils})
    try:
        yield torch, utils
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def write_torch_zip(path, obj) -> None:
    """`obj` (dicts of numpy arrays) in the `torch.save` zip layout, without PyTorch."""
    storages: list[np.ndarray] = []
    with _fake_torch() as (torch, utils):
        class Storage:
            def __init__(self, a):
                self.a = a

        class Tensor:
            def __init__(self, a):
                self.a = np.ascontiguousarray(a)

            def __reduce__(self):
                return utils._rebuild_tensor_v2, (Storage(self.a), 0, self.a.shape,
                                                  tuple(s // self.a.itemsize for s in self.a.strides),
                                                  False, collections.OrderedDict())

        class Pickler(pickle.Pickler):
            def persistent_id(self, o):
                if isinstance(o, Storage):
                    storages.append(o.a)
                    kind = getattr(torch, _STORAGES[o.a.dtype.name])
                    return ("storage", kind, str(len(storages) - 1), "cpu", o.a.size)
                return None

        def wrap(v):
            return {k: wrap(x) for k, x in v.items()} if isinstance(v, dict) else Tensor(v)

        buf = io.BytesIO()
        Pickler(buf, protocol=2).dump(wrap(obj))
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/byteorder", "little")
        for i, a in enumerate(storages):
            z.writestr(f"archive/data/{i}", a.astype(a.dtype.newbyteorder("<")).tobytes())
        z.writestr("archive/version", "3\n")


def test_pth_without_torch_reads_tensors_and_refuses_code(tmp_path, env, weights_bytes):
    with np.load(io.BytesIO(weights_bytes)) as data:
        state = {k: data[k] for k in data.files}
    path = tmp_path / "net_g_tiny_x2.pth"
    # `module.` prefixes and the params/params_ema pair of BasicSR; params_ema is chosen.
    write_torch_zip(path, {"params": {k: np.zeros_like(v) for k, v in state.items()},
                           "params_ema": {f"module.{k}": v for k, v in state.items()}})
    read = read_pth(path)
    assert set(read) == {"params", "params_ema"}
    for k, v in state.items():
        got = read["params_ema"][f"module.{k}"]
        assert got.dtype == v.dtype and got.shape == v.shape and np.array_equal(got, v), k
    if "torch" not in sys.modules:
        from lsm_jax.porting.pth import torch_available
        if not torch_available():   # the cache's path: the .pth read here, converted as an .npz
            got = resolve(path)
            assert got.converted and got.label == "net_g_tiny_x2"
    evil = tmp_path / "evil.pth"
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("archive/data.pkl", b"cos\nsystem\n(S'echo hi'\ntR.")
    with pytest.raises(PthError, match="refused to load os.system"):
        read_pth(evil)
    (tmp_path / "cut.pth").write_bytes(path.read_bytes()[:1000])
    with pytest.raises(PthError, match="not a zip archive"):
        read_pth(tmp_path / "cut.pth")
