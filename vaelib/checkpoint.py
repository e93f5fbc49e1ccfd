"""Checkpoints that are written atomically and read back safely (`weights_only=True`)."""

from __future__ import annotations

import os
import pickle
import tempfile
import zipfile
from pathlib import Path

import torch


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, corrupt or from an incompatible run."""


def atomic_write(path: str | Path, write) -> None:
    """Call write(tmp_path) on a temporary file beside `path`, then rename it over `path`.

    A crash or Ctrl-C mid-write leaves the previous file intact, never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Save a dict of tensors and plain values atomically."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """Load a checkpoint saved by `save_checkpoint`, refusing arbitrary pickled code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {path}. Train a model first (vaelib.fit or "
                              f"vaelib.train_or_load), or check the path.")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile, pickle.UnpicklingError) as e:
        first_line = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise CheckpointError(f"Checkpoint {path} is truncated or corrupt and cannot be read "
                              f"({type(e).__name__}: {first_line}). Delete it and train again; if it was "
                              f"'last.pt', the 'best.pt' beside it may still be intact.") from e
    if not isinstance(state, dict) or "model" not in state or "config" not in state:
        raise CheckpointError(f"{path} is not a vaelib checkpoint (expected a dict with 'model' and "
                              f"'config' entries).")
    return state
