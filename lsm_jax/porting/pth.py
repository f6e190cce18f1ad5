"""Read a PyTorch `.pth` state_dict without PyTorch.

    state = read_pth("net_g_LSM_light_x4.pth")        # {'params_ema': {'conv_first.weight': ndarray, ...}}

`lsm_jax.porting.checkpoint.load_state_dict` calls it for a `.pth` when PyTorch is not installed.

A `.pth` written by `torch.save` (PyTorch >= 1.6) is a zip archive: `<name>/data.pkl` pickles the object
with every tensor as a reference to a raw little-endian storage file `<name>/data/<key>`. This module
unpickles it with an allow-list of globals (dicts, `torch._utils._rebuild_tensor_v2` and the typed storage
classes) and builds numpy arrays from the storages; any other global is refused, so no pickled code runs
(the same guarantee as `torch.load(weights_only=True)`). The pre-1.6 format (a bare pickle stream) is not
read: with PyTorch installed, `lsm_jax.porting.checkpoint.load_state_dict` reads both.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np

__all__ = ["PthError", "read_pth", "torch_available"]

_STORAGE_DTYPES = {
    "FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "BFloat16Storage": "bfloat16",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1",
    "ByteStorage": "u1", "BoolStorage": "?",
}


class PthError(ValueError):
    """A file that is not a readable `torch.save` zip archive of tensors."""


def torch_available() -> bool:
    """Whether PyTorch can be imported (then the porting code reads `.pth` files itself)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


class _Storage(str):
    """A storage class name (`FloatStorage`, ...) standing in for `torch.FloatStorage` in the pickle."""


def _rebuild_tensor_v2(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    size, stride = tuple(int(n) for n in size), tuple(int(n) for n in stride)
    if not size:
        return np.array(storage[offset])
    needed = offset + 1 + sum((n - 1) * s for n, s in zip(size, stride)) if all(size) else offset
    if needed > storage.size:
        raise PthError(f"a tensor of shape {size} reaches past its storage ({storage.size} elements)")
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size,
                                           strides=[s * storage.itemsize for s in stride])
    return np.array(view)


def _rebuild_tensor(storage, offset, size, stride):
    return _rebuild_tensor_v2(storage, offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, hooks=None, state=None):
    return data


_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "dict"): dict,
    ("_codecs", "encode"): lambda text, encoding="latin1": text.encode(encoding),   # bytes, pickle protocol 2
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str, byteorder: str):
        super().__init__(io.BytesIO(data))
        self.archive, self.prefix, self.byteorder = archive, prefix, byteorder
        self.storages: dict[str, np.ndarray] = {}

    def find_class(self, module: str, name: str):
        if module == "torch" and name in _STORAGE_DTYPES:
            return _Storage(name)
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        raise PthError(f"refused to load {module}.{name} (only tensors and dicts are read without PyTorch)")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise PthError(f"unknown persistent reference {pid!r}")
        _, kind, key, _location, numel = pid
        if not isinstance(kind, _Storage):
            raise PthError(f"unknown storage type {kind!r}")
        key = str(key)
        if key not in self.storages:
            dtype = _dtype(str(kind), self.byteorder)
            try:
                raw = self.archive.read(f"{self.prefix}/data/{key}")
            except KeyError:
                raise PthError(f"storage {key} is missing from the archive") from None
            if len(raw) < int(numel) * dtype.itemsize:
                raise PthError(f"storage {key} is truncated ({len(raw)} bytes for {numel} elements)")
            self.storages[key] = np.frombuffer(raw, dtype, count=int(numel))
        return self.storages[key]


def _dtype(kind: str, byteorder: str) -> np.dtype:
    code = _STORAGE_DTYPES[kind]
    if code == "bfloat16":
        import ml_dtypes
        dtype = np.dtype(ml_dtypes.bfloat16)
    else:
        dtype = np.dtype(code)
    return dtype.newbyteorder(">") if byteorder == "big" and dtype.itemsize > 1 else dtype


def read_pth(path: str | Path):
    """The object a `torch.save` zip archive holds, with numpy arrays for tensors (bfloat16 as float32)."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            pickles = [n for n in archive.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
            if len(pickles) != 1:
                raise PthError(f"{path}: not a torch.save archive (no single <name>/data.pkl)")
            prefix = pickles[0].split("/")[0]
            names = set(archive.namelist())
            order = archive.read(f"{prefix}/byteorder").decode().strip() if f"{prefix}/byteorder" in names \
                else "little"
            obj = _Unpickler(archive.read(pickles[0]), archive, prefix, order).load()
    except zipfile.BadZipFile:
        raise PthError(f"{path}: not a zip archive: a damaged download, or a .pth from PyTorch < 1.6 "
                       "(read that with PyTorch: pip install 'lsm-jax[torch]')") from None
    except PthError as err:
        raise PthError(str(err) if str(err).startswith(str(path)) else f"{path}: {err}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, KeyError, OSError, zipfile.LargeZipFile) as err:
        raise PthError(f"{path}: cannot read ({type(err).__name__}: {err})") from None

    def floats(value):
        if isinstance(value, dict):
            return {k: floats(v) for k, v in value.items()}
        if isinstance(value, np.ndarray) and value.dtype.name == "bfloat16":
            return value.astype(np.float32)
        return value

    return floats(obj)
