"""Atomic file writes, JSON and JSON-lines helpers, and safe tensor files.

Every file cognet writes goes through :func:`atomic_write`: the data lands in a temporary
file in the same folder, is flushed to disk, and replaces the target in one ``os.replace``.
A killed process leaves either the old file or the new one, never half of one.

Tensors are stored with ``safetensors`` (no pickle: loading a file never runs code).

Integrity: :func:`save_tensors` writes, in the metadata key ``sha256``, a JSON object mapping
every tensor name to the SHA-256 of its raw bytes (as stored: little-endian, C order), and
``__metadata__`` to the SHA-256 of the other metadata (canonical JSON, sorted keys);
:func:`load_tensors` recomputes and compares them, and refuses a file whose tensors were
changed, added or removed (:class:`CorruptFileError` naming the file, the tensor and the
remedy). Files written before checksums existed (no ``sha256`` key) load without the check.
The checksums detect damage (a flipped byte, a truncated copy), not deliberate edits (whoever
edits a file can rewrite them): for crafted content the readers validate the values
themselves (model metadata against its config, checkpoint rates, record shapes and 0/1 spikes).

One writer per run directory: :func:`run_lock` takes an advisory ``fcntl.flock`` on
``DIR/.lock`` (the holder's PID written inside). The kernel drops the lock when the holder
exits, however it exits, so a killed process never leaves a stale lock behind. A second
process gets :class:`RunDirBusy` naming the holder's PID.

All-or-nothing output sets: :class:`OutputSet` stages several files in a hidden folder
``DIR/.staging-<name>-<pid>/`` and commits them by first writing its manifest (the commit
point) and then moving each file into place. :func:`recover_staging` (called under the lock
by every writer) rolls a committed set forward and deletes an uncommitted one, together with
stray ``.*.tmp`` files from :func:`atomic_write`; after a kill a reader therefore sees the
whole old set or the whole new one.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
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


class RunDirBusy(RuntimeError):
    """Another process holds the run directory's lock."""


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
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CorruptFileError(f"{path} is not valid JSON ({exc})") from None
    except RecursionError:
        raise CorruptFileError(f"{path} is nested too deeply to be a cognet file") from None


def read_json_object(path: PathLike) -> Dict[str, Any]:
    """:func:`read_json` for files that must hold one JSON object (summary.json, verify.json)."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise CorruptFileError(f"{path} must hold a JSON object, found a {type(data).__name__}; "
                               "delete it or restore it from a backup")
    return data


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


CHECKSUM_KEY = "sha256"
META_DIGEST = "__metadata__"  # entry of the checksum table covering the other metadata


def metadata_digest(meta: Mapping[str, str]) -> str:
    """SHA-256 of the metadata (every key but the checksum table), canonical JSON."""
    rest = {k: v for k, v in meta.items() if k != CHECKSUM_KEY}
    return hashlib.sha256(json.dumps(rest, sort_keys=True).encode()).hexdigest()


def tensor_digest(t: torch.Tensor) -> str:
    """SHA-256 of a tensor's raw bytes (C order, as safetensors stores them)."""
    t = t.detach().contiguous().cpu()
    if t.numel() == 0:
        return hashlib.sha256(b"").hexdigest()
    return hashlib.sha256(t.reshape(-1).view(torch.uint8).numpy().tobytes()).hexdigest()


def save_tensors(path: PathLike, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str]) -> None:
    """Write ``tensors`` and ``metadata`` atomically, with the per-tensor SHA-256 (see module doc)."""
    clean = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    meta = dict(metadata)
    sums = {k: tensor_digest(v) for k, v in sorted(clean.items())}
    sums[META_DIGEST] = metadata_digest(meta)
    meta[CHECKSUM_KEY] = json.dumps(sums)
    atomic_write(path, save(clean, metadata=meta))


def load_tensors(path: PathLike) -> Tuple[Dict[str, torch.Tensor], Dict[str, str]]:
    """Load a safetensors file and its metadata; raise :class:`CorruptFileError` if it is
    unreadable or its checksums do not match (files without checksums load unchecked)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    try:
        tensors = load_file(str(path))
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError, OverflowError) as exc:
        raise CorruptFileError(f"{path} is corrupt or not a safetensors file ({exc}); "
                               "delete it and recreate it (train with --restart, or verify/analyze again)") from None
    if CHECKSUM_KEY in meta:
        remedy = "the file was changed after cognet wrote it; delete it and recreate it, or restore a backup"
        try:
            sums = json.loads(meta[CHECKSUM_KEY])
        except (json.JSONDecodeError, RecursionError):
            sums = None
        if not isinstance(sums, dict) or not all(isinstance(v, str) for v in sums.values()):
            raise CorruptFileError(f"{path} has an unreadable checksum table; {remedy}")
        meta_sum = sums.pop(META_DIGEST, None)
        if meta_sum is not None and meta_sum != metadata_digest(meta):
            raise CorruptFileError(f"{path}: checksum mismatch in the metadata; {remedy}")
        if set(sums) != set(tensors):
            raise CorruptFileError(f"{path}: tensors {sorted(set(tensors) ^ set(sums))} do not match the "
                                   f"checksum table; {remedy}")
        for name, t in tensors.items():
            if tensor_digest(t) != sums[name]:
                raise CorruptFileError(f"{path}: checksum mismatch in tensor {name!r}; {remedy}")
    return tensors, meta


def check_finite(path: PathLike, tensors: Mapping[str, torch.Tensor]) -> None:
    """Raise :class:`CorruptFileError` if a floating-point tensor holds NaN or infinity."""
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CorruptFileError(f"{path}: tensor {name!r} holds NaN or infinite values (a diverged or "
                                   "damaged run); retrain it with --restart")


def physical_memory_bytes() -> float:
    """This machine's physical memory (infinity where the OS does not say)."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return float("inf")


# -- one writer per run directory ------------------------------------------------------------
LOCK_NAME = ".lock"
_HELD: Dict[str, Tuple[int, int]] = {}  # resolved dir -> (fd, depth); re-entrant within a process


@contextlib.contextmanager
def run_lock(run_dir: PathLike) -> Iterator[Path]:
    """Hold the advisory lock of ``run_dir`` (created if needed) for the ``with`` block.

    Re-entrant within one process. Raises :class:`RunDirBusy` if another process holds it.
    On entry, leftovers of killed writers are recovered (:func:`recover_staging`).
    """
    import fcntl

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    key = str(run_dir.resolve())
    if key in _HELD:
        fd, depth = _HELD[key]
        _HELD[key] = (fd, depth + 1)
        try:
            yield run_dir
        finally:
            fd, depth = _HELD[key]
            _HELD[key] = (fd, depth - 1)
        return
    lock_path = run_dir / LOCK_NAME
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666 & ~_UMASK)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            os.close(fd)
            raise
        try:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        finally:
            os.close(fd)
        raise RunDirBusy(f"{run_dir} is in use by process {holder} (another cognet train, verify or analyze); "
                         "wait for it to finish or use another directory") from None
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        _HELD[key] = (fd, 1)
        recover_staging(run_dir)
        yield run_dir
    finally:
        _HELD.pop(key, None)
        os.close(fd)  # releases the flock


# -- all-or-nothing output sets ---------------------------------------------------------------
STAGING_PREFIX = ".staging-"
MANIFEST = "MANIFEST.json"


class OutputSet:
    """Stage files, then move them into place as a whole (see the module docstring).

    ``path(dest)`` gives the staging path for the final path ``dest``; ``commit()`` writes the
    manifest (the commit point) and moves every staged file to its destination.
    """

    def __init__(self, run_dir: PathLike, name: str) -> None:
        self.run_dir = Path(run_dir)
        self.dir = self.run_dir / f"{STAGING_PREFIX}{name}-{os.getpid()}"
        if self.dir.exists():
            shutil.rmtree(self.dir)
        self.dir.mkdir(parents=True)
        self._dest: Dict[str, str] = {}

    def path(self, dest: PathLike) -> Path:
        staged = f"{len(self._dest):03d}-{Path(dest).name}"
        self._dest[staged] = str(Path(dest).resolve())
        return self.dir / staged

    def commit(self) -> None:
        missing = [n for n in self._dest if not (self.dir / n).exists()]
        if missing:
            raise RuntimeError(f"output set {self.dir} lacks staged files {missing}")
        write_json(self.dir / MANIFEST, self._dest)
        _roll_forward(self.dir)

    def discard(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "OutputSet":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.dir.exists():
            if exc_type is None and (self.dir / MANIFEST).exists():
                _roll_forward(self.dir)
            else:
                self.discard()


def _roll_forward(staging: Path) -> None:
    dest = read_json(staging / MANIFEST)
    for staged, target in dest.items():
        src = staging / staged
        if src.exists():
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            try:
                os.replace(src, target)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                shutil.move(str(src), target)
    shutil.rmtree(staging, ignore_errors=True)


def recover_staging(run_dir: PathLike) -> List[str]:
    """Finish committed output sets of killed writers, delete uncommitted ones and stray
    ``.*.tmp`` files of :func:`atomic_write` in ``run_dir``; returns what was done."""
    run_dir = Path(run_dir)
    done: List[str] = []
    if not run_dir.is_dir():
        return done
    for entry in sorted(run_dir.iterdir()):
        if entry.is_dir() and entry.name.startswith(STAGING_PREFIX):
            if (entry / MANIFEST).exists():
                try:
                    _roll_forward(entry)
                    done.append(f"completed {entry.name}")
                    continue
                except (CorruptFileError, OSError):
                    pass
            shutil.rmtree(entry, ignore_errors=True)
            done.append(f"removed {entry.name}")
        elif entry.is_file() and entry.name.startswith(".") and entry.name.endswith(".tmp"):
            entry.unlink()
            done.append(f"removed {entry.name}")
    return done
