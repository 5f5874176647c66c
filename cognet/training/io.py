"""Atomic file writes, JSON and JSON-lines helpers, and safe tensor files.

Every file cognet writes goes through :func:`atomic_write`: the data lands in a temporary
file in the same folder, is flushed to disk, and replaces the target in one ``os.replace``.
A killed process leaves either the old file or the new one, never half of one.

Tensors are stored with ``safetensors`` (no pickle: loading a file never runs code).
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

PathLike = Union[str, Path]


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


class CorruptFileError(RuntimeError):
    """A file cognet wrote earlier cannot be read back (truncated, edited or not ours)."""


def atomic_write(path: PathLike, data: Union[bytes, str]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


@contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """For writers that need a file name (HDF5, NWB): yields a temporary path in the same
    folder; when the block ends without error the file is flushed to disk and replaces
    ``path`` in one ``os.replace``; on error it is removed and ``path`` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    os.unlink(tmp)  # writers such as h5py want to create the file themselves
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.tolist()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(obj: Any, indent: Optional[int] = 2) -> str:
    return json.dumps(obj, indent=indent, default=_jsonable, sort_keys=False)


def write_json(path: PathLike, obj: Any) -> None:
    atomic_write(path, dumps(obj) + "\n")


def read_json(path: PathLike) -> Any:
    try:
        with open(path) as fh:
            return json.load(fh)
    except json.JSONDecodeError as exc:
        raise CorruptFileError(f"{path} is not valid JSON ({exc})") from None


def append_jsonl(path: PathLike, record: Mapping[str, Any]) -> None:
    """Append one JSON line (flushed). A torn last line from a kill is dropped on read."""
    with open(path, "a") as fh:
        fh.write(dumps(record, indent=None) + "\n")
        fh.flush()


def read_jsonl(path: PathLike) -> List[Dict[str, Any]]:
    out: List[Dict[str, Any]] = []
    if not Path(path).exists():
        return out
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line torn by a kill: everything after it is unreliable
    return out


def rewrite_jsonl(path: PathLike, records: Iterable[Mapping[str, Any]]) -> None:
    atomic_write(path, "".join(dumps(r, indent=None) + "\n" for r in records))


def save_tensors(path: PathLike, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> None:
    clean = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(path, save(clean, metadata=dict(metadata)))


def load_tensors(path: PathLike) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """Load a safetensors file and its metadata; raise :class:`CorruptFileError` if unreadable."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise CorruptFileError(f"{path} is corrupt or not a safetensors file ({exc})") from None
    return tensors, meta
