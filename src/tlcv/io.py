"""Atomic writes: a reader never sees a half-written file, and a crash keeps the old one."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import TlcvError

if TYPE_CHECKING:
    import torch


def _file_mode() -> int:
    """The mode open() would give a new file (mkstemp's temporary files are 0600, which would
    make every run folder unreadable to the rest of a team)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


FILE_MODE = _file_mode()


def _atomic(path: Path, write: Callable[[Path], None]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # The pid in the name lets a later run tell a dead writer's leftover from a live one's.
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        # safetensors reports a full disk as its own SafetensorError, not OSError
        if isinstance(exc, OSError) or type(exc).__name__ == "SafetensorError":
            raise write_error(path, exc) from exc
        raise
    return path


def write_error(path: Path, exc: BaseException) -> TlcvError:
    try:
        free = f"{shutil.disk_usage(path.parent).free / 1e6:.1f} MB free there"
    except OSError:
        free = "free space unknown"
    reason = getattr(exc, "strerror", None) or str(exc).strip().splitlines()[0][:160]
    return TlcvError(
        f"could not write {path.name} into {path.parent}: {reason} ({free})",
        hint="free disk space (or point --out / --cache elsewhere) and run the same command "
        "again: finished work is kept and the previous file, if any, is intact",
        path=str(path),
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete temporary files that killed writers left in ``folder`` (``.NAME.PID.*.tmp``
    whose PID is gone); a live writer's files are kept."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        pid = next((int(p) for p in tmp.name.split(".") if p.isdigit()), None)
        if pid is not None and pid != os.getpid() and not _alive(pid):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def write_bytes(path: Path, data: bytes) -> Path:
    return _atomic(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: Path, text: str) -> Path:
    # surrogateescape: file names that are not valid UTF-8 are written back as their bytes
    return write_bytes(path, text.encode("utf-8", "surrogateescape"))


def write_json(path: Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def save_tensors(
    path: Path, tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None
) -> Path:
    """Save tensors as safetensors atomically (contiguous CPU copies, as the format requires)."""
    from safetensors.torch import save_file

    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    return _atomic(path, lambda tmp: save_file(clean, str(tmp), metadata=dict(metadata or {})))


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(obj: Any) -> str:
    """Short stable hash of a JSON-able object (cache keys, config identity)."""
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
