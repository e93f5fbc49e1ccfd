"""Checkpoints written atomically and read back safely (`weights_only`)."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import torch


class CheckpointError(RuntimeError):
    """Checkpoint missing, truncated, corrupt or from an incompatible run."""


class CheckpointWriteError(RuntimeError):
    """A file could not be written (disk full, read-only folder).

    The previous version of the file is intact.
    """


def _fsync_dir(folder: Path) -> None:
    """Make a rename inside `folder` durable.

    A no-op where folders cannot be opened (e.g. Windows).
    """
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write) -> None:
    """Call write(tmp_path) on a temporary file, then rename it over `path`.

    The temporary file lies beside `path`. A crash or Ctrl-C mid-write
    leaves the previous file intact, never a half-written one; so does a
    write that fails (CheckpointWriteError says which file and why).
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
        os.close(fd)
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    # torch.save reports a failed write as a RuntimeError
    except (OSError, RuntimeError) as e:
        raise CheckpointWriteError(
            f"Could not write {path} ({type(e).__name__}: {e}). The previous "
            f"version of the file, if any, is intact. Free disk space or make "
            f"{path.parent} writable, then run again (training resumes)."
        ) from e
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Save a dict of tensors and plain values atomically."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint saved by `save_checkpoint`, refusing pickled code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"No checkpoint at {path}. Train a model first (vaelib.fit or "
            f"vaelib.train_or_load), or check the path."
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    # torch, zipfile and pickle each fail on damaged bytes in their own way
    except Exception as e:
        first_line = (
            str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        )
        raise CheckpointError(
            f"Checkpoint {path} is truncated or corrupt and cannot be read "
            f"({type(e).__name__}: {first_line}). vaelib.train_or_load "
            f"retrains such a cached run by itself; after vaelib.fit, delete "
            f"the file and train again."
        ) from e
    if (
        not isinstance(state, dict)
        or "model" not in state
        or "config" not in state
    ):
        raise CheckpointError(
            f"{path} is not a vaelib checkpoint (expected a dict with 'model' "
            f"and 'config' entries)."
        )
    return state
