"""Train once, load ever after: runs cached in a folder keyed by config + data + code version."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd
import torch
from filelock import FileLock

from .checkpoint import atomic_write, load_checkpoint
from .config import VAEConfig, resolve_device
from .data import Splits, project_root
from .model import VAE
from .train import FitResult, fit

CACHE_ENV = "VAELIB_CACHE_DIR"
CACHE_VERSION = 3  # bump when a change to training makes old cached models stale (3: denormals flushed)


def default_cache_dir() -> Path:
    """$VAELIB_CACHE_DIR, else .cache/models in the checkout, else ~/.cache/vaelib/models."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    root = project_root()
    return root / ".cache" / "models" if root else Path.home() / ".cache" / "vaelib" / "models"


def run_dir_for(config: VAEConfig, splits: Splits, cache_dir: str | Path | None = None) -> Path:
    """The cache folder of this config trained on exactly this data, e.g. latent2-beta1.0-3f2a…"""
    key = hashlib.sha256(f"{config.key()}/{splits.fingerprint}/v{CACHE_VERSION}".encode()).hexdigest()[:12]
    return Path(cache_dir or default_cache_dir()) / f"latent{config.latent_dim}-beta{config.beta:g}-{key}"


def build_model(config: VAEConfig) -> VAE:
    """A freshly initialised VAE on config.device; weights depend only on config.seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = VAE(config)
    return model.to(resolve_device(config.device))


def load_run(run_dir: str | Path, device: str = "auto") -> tuple[VAE, FitResult]:
    """A finished run's best model (in eval mode) and its training record."""
    run_dir = Path(run_dir)
    state = load_checkpoint(run_dir / "best.pt", map_location=resolve_device(device))
    config = VAEConfig.from_dict(state["config"]).replace(device=device)
    model = VAE(config).to(resolve_device(device))
    model.load_state_dict(state["model"])
    model.eval()
    summary = json.loads((run_dir / "done.json").read_text())
    history = pd.read_csv(run_dir / "metrics.csv")
    return model, FitResult(history, summary["best_epoch"], summary["best_val_loss"], summary["stopped_early"], run_dir)


def train_or_load(config: VAEConfig, splits: Splits, cache_dir: str | Path | None = None,
                  progress: bool = True) -> tuple[VAE, FitResult]:
    """Load the cached run for (config, data) if it finished; otherwise train (resuming if cut off).

    A lock file beside the run folder makes a second process that wants the same model (another
    kernel, a parallel build) wait for the first to finish and then load its result.
    """
    run_dir = run_dir_for(config, splits, cache_dir)
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{run_dir}.lock"):
        if (run_dir / "done.json").exists():
            return load_run(run_dir, config.device)
        model = build_model(config)
        result = fit(model, splits, config, run_dir=run_dir, resume=True, progress=progress)
        (run_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
        summary = {"best_epoch": result.best_epoch, "best_val_loss": result.best_val_loss,
                   "stopped_early": result.stopped_early, "data_fingerprint": splits.fingerprint,
                   "torch": torch.__version__}
        atomic_write(run_dir / "done.json", lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2)))
    return model, result
