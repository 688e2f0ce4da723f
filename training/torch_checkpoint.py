"""Torch checkpoints read WITHOUT torch, by an unpickler that accepts only what a state dict uses.

`read_torch_state_dict` reads a plain state dict (zip or legacy format) into numpy arrays; any
other pickled global raises `UnsafeCheckpointError`, anything malformed `TorchCheckpointError`.
`training.pretrained` uses it to convert torchvision's ImageNet weights.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import tarfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, BinaryIO, Final

import numpy as np


class TorchCheckpointError(ValueError):
    """A file is not a torch checkpoint this reader understands."""


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint's pickle asked for a global that is not on the allow-list."""


_LEGACY_MAGIC: Final[int] = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL: Final[int] = 1001
_STORAGE_DTYPES: Final[dict[str, str]] = {
    "DoubleStorage": "f8",
    "FloatStorage": "f4",
    "HalfStorage": "f2",
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}


class _StorageType:
    """Stands for a ``torch.*Storage`` class: only its element dtype matters."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])

    def __repr__(self) -> str:
        return f"torch.{self.name}"


class _Storage:
    """A flat typed buffer; its data may arrive after the pickle (legacy format)."""

    def __init__(self, dtype: np.dtype, numel: int) -> None:
        self.dtype = dtype
        self.numel = numel
        self.data: np.ndarray | None = None
        self.base: _Storage | None = None
        self.base_offset = 0

    def array(self) -> np.ndarray:
        if self.base is not None:
            return self.base.array()[self.base_offset : self.base_offset + self.numel]
        if self.data is None:
            raise TorchCheckpointError("checkpoint references a storage whose data is missing")
        return self.data


class _LazyTensor:
    """The arguments of ``torch._utils._rebuild_tensor_v2``, materialised after loading."""

    def __init__(
        self, storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...]
    ) -> None:
        if not isinstance(storage, _Storage):
            raise TorchCheckpointError("tensor is not backed by a storage")
        self.storage = storage
        self.offset = int(offset)
        self.size = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)

    def numpy(self) -> np.ndarray:
        flat = self.storage.array()
        if not self.size:
            return flat[self.offset : self.offset + 1].reshape(()).copy()
        if any(s == 0 for s in self.size):
            return np.zeros(self.size, dtype=flat.dtype)
        last = self.offset + sum((n - 1) * st for n, st in zip(self.size, self.stride, strict=True))
        if self.offset < 0 or min(self.stride) < 0 or last >= flat.size:
            raise TorchCheckpointError("tensor extends past the end of its storage")
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :],
            shape=self.size,
            strides=tuple(st * flat.itemsize for st in self.stride),
            writeable=False,
        )
        return np.array(view, order="C", copy=True)


def _rebuild_tensor(
    storage: _Storage, storage_offset: int, size: tuple[int, ...], stride: tuple[int, ...]
) -> _LazyTensor:
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(
    storage: _Storage,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> _LazyTensor:
    return _LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data: _LazyTensor, requires_grad: bool, backward_hooks: Any) -> _LazyTensor:
    return data


_SAFE_GLOBALS: Final[dict[tuple[str, str], Any]] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles a torch state dict: only allow-listed globals, mapped to numpy shims."""

    def __init__(self, file: BinaryIO, persistent_load: Any = None) -> None:
        super().__init__(file)
        self._persistent = persistent_load

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeCheckpointError(
                f"refusing to load global '{module}.{name}' from a checkpoint: only plain "
                f"tensor state dicts can be read (allowed: "
                f"{', '.join(sorted(f'{m}.{n}' for m, n in _SAFE_GLOBALS))})"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        if self._persistent is None:
            raise UnsafeCheckpointError("unexpected persistent id in pickle")
        return self._persistent(pid)


def _as_str(value: Any) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else str(value)


def _check_storage_pid(pid: Any) -> tuple[_StorageType, str, int]:
    if not isinstance(pid, tuple) or len(pid) < 5 or _as_str(pid[0]) != "storage":
        raise TorchCheckpointError(f"unsupported persistent id {pid!r:.80}")
    storage_type, key, numel = pid[1], _as_str(pid[2]), pid[4]
    if not isinstance(storage_type, _StorageType):
        raise TorchCheckpointError(f"unsupported storage type {storage_type!r:.80}")
    if not isinstance(numel, int) or numel < 0:
        raise TorchCheckpointError(f"bad storage size {numel!r:.80}")
    return storage_type, key, numel


def _materialise(obj: Any) -> Any:
    if isinstance(obj, _LazyTensor):
        return obj.numpy()
    if isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        for key, value in obj.items():
            out[key] = _materialise(value)
        return out
    if isinstance(obj, list | tuple):
        return type(obj)(_materialise(v) for v in obj)
    return obj


def _read_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pkl = [n for n in names if n == "data.pkl" or n.endswith("/data.pkl")]
        if len(pkl) != 1:
            raise TorchCheckpointError(f"{path}: zip file has no single data.pkl (not torch)")
        root = pkl[0][: -len("data.pkl")]
        order = "<"
        if root + "byteorder" in names:
            order = "<" if archive.read(root + "byteorder").strip() == b"little" else ">"
        storages: dict[str, _Storage] = {}

        def load(pid: Any) -> _Storage:
            storage_type, key, numel = _check_storage_pid(pid)
            if key not in storages:
                dtype = storage_type.dtype.newbyteorder(order)
                try:
                    raw = archive.read(f"{root}data/{key}")
                except KeyError as exc:
                    raise TorchCheckpointError(f"{path}: storage data/{key} missing") from exc
                if len(raw) != numel * dtype.itemsize:
                    raise TorchCheckpointError(
                        f"{path}: storage data/{key} has {len(raw)} bytes, expected "
                        f"{numel} x {dtype.itemsize}"
                    )
                storage = _Storage(dtype, numel)
                storage.data = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="))
                storages[key] = storage
            return storages[key]

        with archive.open(pkl[0]) as handle:
            result = _RestrictedUnpickler(io.BytesIO(handle.read()), load).load()
    return _materialise(result)


def _read_legacy(handle: BinaryIO, path: Path) -> Any:
    magic = _RestrictedUnpickler(handle).load()
    if magic != _LEGACY_MAGIC:
        raise TorchCheckpointError(f"{path}: not a torch checkpoint (bad magic number)")
    protocol = _RestrictedUnpickler(handle).load()
    if protocol != _LEGACY_PROTOCOL:
        raise TorchCheckpointError(f"{path}: unsupported legacy protocol {protocol!r}")
    sys_info = _RestrictedUnpickler(handle).load()
    order = "<" if not isinstance(sys_info, dict) or sys_info.get("little_endian", True) else ">"
    storages: dict[str, _Storage] = {}

    def load(pid: Any) -> Any:
        if isinstance(pid, tuple) and pid and _as_str(pid[0]) == "module":
            raise UnsafeCheckpointError("checkpoint pickles whole modules; only state dicts load")
        storage_type, key, numel = _check_storage_pid(pid)
        view = pid[5] if len(pid) > 5 else None
        if key not in storages:
            storages[key] = _Storage(storage_type.dtype.newbyteorder(order), numel)
        if view is None:
            return storages[key]
        view_key, offset, view_size = _as_str(view[0]), int(view[1]), int(view[2])
        if view_key not in storages:
            child = _Storage(storages[key].dtype, view_size)
            child.base, child.base_offset = storages[key], offset
            storages[view_key] = child
        return storages[view_key]

    result = _RestrictedUnpickler(handle, load).load()
    keys = _RestrictedUnpickler(handle).load()
    if not isinstance(keys, list):
        raise TorchCheckpointError(f"{path}: bad storage key list")
    for raw_key in keys:
        key = _as_str(raw_key)
        storage = storages.get(key)
        if storage is None:
            raise TorchCheckpointError(f"{path}: storage key {key!r} was never referenced")
        header = handle.read(8)
        if len(header) != 8:
            raise TorchCheckpointError(f"{path}: truncated storage header")
        numel = int(np.frombuffer(header, dtype=np.dtype("i8").newbyteorder(order))[0])
        if numel != storage.numel:
            raise TorchCheckpointError(f"{path}: storage {key} size {numel} != {storage.numel}")
        nbytes = numel * storage.dtype.itemsize
        raw = handle.read(nbytes)
        if len(raw) != nbytes:
            raise TorchCheckpointError(f"{path}: truncated storage {key}")
        storage.data = np.frombuffer(raw, dtype=storage.dtype).astype(
            storage.dtype.newbyteorder("=")
        )
    return _materialise(result)


def read_torch_state_dict(path: str | os.PathLike[str]) -> dict[str, np.ndarray]:
    """Reads a torch ``state_dict`` checkpoint into numpy arrays, without torch.

    Both formats of ``torch.save`` are supported: the zip format (torch >= 1.6: ``data.pkl`` plus
    one ``data/<key>`` file per storage) and the legacy format (torch < 1.6, used by
    torchvision's older checkpoints: a magic number, protocol and system-info pickle, the main
    pickle, the storage key list, then each storage's raw bytes). The pickles are read by an
    unpickler that resolves only ``collections.OrderedDict``, ``torch._utils._rebuild_tensor``,
    ``_rebuild_tensor_v2``, ``_rebuild_parameter`` and ``torch.*Storage`` types (to numpy
    shims), so a checkpoint cannot run code. The ancient tar format (torch < 0.4) is not
    supported.

    Args:
        path: The ``.pth``/``.pt`` file.

    Returns:
        The state dict, each tensor as a C-contiguous numpy array, in the file's key order.

    Raises:
        UnsafeCheckpointError: If the pickle asks for any other global (it may try to run code).
        TorchCheckpointError: If the file is not a readable torch state dict.
    """
    path = Path(path)
    if zipfile.is_zipfile(path):
        result = _read_zip(path)
    elif _is_tar(path):
        raise TorchCheckpointError(
            f"{path}: the tar checkpoint format (torch < 0.4) is unsupported"
        )
    else:
        with path.open("rb") as handle:
            try:
                result = _read_legacy(handle, path)
            except UnsafeCheckpointError:
                raise
            except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
                if isinstance(exc, TorchCheckpointError):
                    raise
                raise TorchCheckpointError(
                    f"{path}: not a readable torch checkpoint: {exc}"
                ) from exc
    if (
        isinstance(result, Mapping)
        and "state_dict" in result
        and isinstance(result["state_dict"], Mapping)
    ):
        result = result["state_dict"]
    if not isinstance(result, Mapping):
        raise TorchCheckpointError(f"{path}: checkpoint holds {type(result).__name__}, not a dict")
    state = {str(k): v for k, v in result.items() if isinstance(v, np.ndarray)}
    if not state:
        raise TorchCheckpointError(f"{path}: checkpoint holds no tensors")
    return state


def _is_tar(path: Path) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False
