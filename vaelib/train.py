"""Training: Adam, LR scheduling, early stopping, checkpoints and resume.

Checkpoints are written atomically, and every epoch's metrics go to a CSV.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import torch
from tqdm.auto import tqdm

from .checkpoint import (
    CheckpointError,
    atomic_write,
    load_checkpoint,
    save_checkpoint,
)
from . import likelihoods
from .config import VAEConfig
from .data import Splits
from .evaluate import evaluate
from .losses import total_correlation, vae_loss
from .model import VAE

METRICS = ("loss", "recon", "kl")


class TrainingDivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


@dataclass
class FitResult:
    """What `fit` returns; the model is left holding the best weights."""

    # per epoch: lr, train_/val_ loss, recon, kl (nats/image),
    # train_seconds, seconds
    history: pd.DataFrame
    best_epoch: int  # 1-based epoch with the lowest validation loss
    best_val_loss: float  # that loss, nats per image
    # True if early stopping ended the run before config.epochs
    stopped_early: bool
    # where best.pt, last.pt and metrics.csv are, if anywhere
    run_dir: Path | None
    # False when vaelib.load_run read the run back from disk
    trained: bool = True


def make_optimizer(model: VAE, config: VAEConfig) -> torch.optim.Optimizer:
    """Adam over all parameters at config.lr.

    It uses the fused kernel where PyTorch has one (CPU, CUDA).
    """
    device = next(model.parameters()).device
    return torch.optim.Adam(
        model.parameters(),
        lr=config.lr,
        fused=device.type in ("cpu", "cuda") or None,
    )


def make_scheduler(optimizer: torch.optim.Optimizer, config: VAEConfig):
    """The LR scheduler that config.scheduler names, or None.

    ReduceLROnPlateau on validation loss (halves the LR) or cosine
    annealing.
    """
    if config.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, factor=0.5, patience=config.lr_patience
        )
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=config.epochs
        )
    return None


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's shuffling, dropout and noise.

    Resuming at any epoch replays it exactly.
    """
    return seed * 100_003 + epoch


def kl_weight(config: VAEConfig, epoch: float) -> float:
    """The KL weight after `epoch` epochs of training (fractions count).

    It is beta, or a linear ramp 0 -> beta over the first config.kl_warmup
    epochs (KL warm-up, Bowman et al., 2016).
    """
    if config.kl_warmup == 0:
        return config.beta
    return config.beta * min(1.0, epoch / config.kl_warmup)


def train_epoch(
    model: VAE,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    config: VAEConfig,
    labels: torch.Tensor | None = None,
    epoch: int = 1,
) -> dict:
    """One pass over `images` in shuffled batches.

    `images` is (N, C, H, W) [and `labels` (N,)]; returns the mean
    loss/recon/kl per image. `epoch` (1-based) places the pass on the KL
    warm-up ramp; the reported loss uses the weight in force.
    """
    model.train()
    n, bs = len(images), config.batch_size
    perm = torch.randperm(n, device=images.device)
    sums = torch.zeros(3, device=images.device)
    # a final batch of one image is skipped: batch norm needs two
    starts = range(0, n - 1, bs)
    seen, nll = 0, likelihoods.nll_function(config)
    for step, start in enumerate(starts):
        idx = perm[start : start + bs]
        x, y = (
            likelihoods.prepare(config, images[idx], check=False),
            None if labels is None else labels[idx],
        )
        out = model(x, y)
        beta = kl_weight(config, epoch - 1 + (step + 1) / len(starts))
        tc = (
            total_correlation(out.z, out.mu, out.logvar, n)
            if config.tc_penalty
            else None
        )
        terms = vae_loss(
            out.logits,
            x,
            out.mu,
            out.logvar,
            beta,
            config.free_bits,
            nll,
            model.kl(out),
            tc,
            config.tc_penalty,
        )
        optimizer.zero_grad(set_to_none=True)
        terms.loss.mean().backward()
        optimizer.step()
        sums += torch.stack([t.detach().sum() for t in terms])
        seen += len(x)
    means = (sums / seen).tolist()  # the epoch's only device-to-host sync
    return dict(zip(METRICS, means))


def _resume_state(
    run_dir: Path, config: VAEConfig, model: VAE, optimizer, scheduler
) -> dict:
    state = load_checkpoint(
        run_dir / "last.pt", map_location=next(model.parameters()).device
    )
    saved = VAEConfig.from_dict(state["config"])
    if saved.replace(epochs=config.epochs, device=config.device) != config:
        raise CheckpointError(
            f"{run_dir / 'last.pt'} was trained with a different config; "
            f"resume needs the same config (only epochs may change).\n"
            f" saved: {saved}\n given: {config}"
        )
    if config.scheduler == "cosine" and saved.epochs != config.epochs:
        raise CheckpointError(
            "A cosine schedule is fixed by epochs; resume it with the same "
            f"epochs ({saved.epochs}) or start a new run."
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    if "best_model" not in state:
        raise CheckpointError(
            f"{run_dir / 'last.pt'} was written by an older vaelib and does "
            f"not hold the best weights; start a new run (delete {run_dir})."
        )
    # best_model, best_val and best_epoch come from this one file, so they
    # always belong together
    return state


def _check_finite(
    train: dict, epoch: int, config: VAEConfig, run_dir: Path | None
) -> None:
    if all(math.isfinite(v) for v in train.values()):
        return
    where = (
        f" The last good weights are in {run_dir / 'last.pt'}."
        if run_dir
        else ""
    )
    raise TrainingDivergedError(
        f"Training diverged in epoch {epoch}: the loss became "
        f"{train['loss']} (recon {train['recon']}, kl {train['kl']}).{where} "
        f"Lower the learning rate (lr={config.lr}), check the inputs are in "
        f"[0, 1] and contain no NaN, or keep batch_norm=True."
    )


def _denormals_flushed() -> bool:
    """Whether this thread treats denormal floats as zero (1e-40 * 1 is 0)."""
    return torch.tensor([1e-40]).mul(1.0).item() == 0.0


@contextlib.contextmanager
def flushed_denormals(flush: bool = True):
    """Treat denormal floats as zero for the block (flush=False: keep them).

    This holds in this thread, and in threads it starts; afterwards the
    thread's setting is restored. A trained decoder emits logits below -87,
    whose sigmoid underflows into the denormal range; some x86 processors
    handle denormals in the backward matmuls very slowly. Flushing changes
    results only in the last bits; the appendix measures its effect on
    speed. Threads PyTorch started earlier keep their own setting:
    `python -m vaelib` trains each model in a fresh single-threaded process.
    """
    before = _denormals_flushed()
    # a no-op where the processor has no such mode
    torch.set_flush_denormal(flush)
    try:
        yield
    finally:
        torch.set_flush_denormal(before)


def _check_splits(splits: Splits, config: VAEConfig) -> None:
    """Clear errors for data `fit` cannot train on.

    Too few images, or another layout than (N, C, H, W).
    """
    shape = tuple(config.input_shape)
    for name, split in (("train", splits.train), ("val", splits.val)):
        x = split.images
        if x.ndim != 1 + len(shape) or tuple(x.shape[1:]) != shape:
            hint = (
                " They look channels-last: use images.permute(0, 3, 1, 2)."
                if x.ndim == 4 and tuple(x.shape[1:]) == shape[1:] + shape[:1]
                else ""
            )
            raise ValueError(
                f"splits.{name}.images must have shape "
                f"(N, {', '.join(map(str, shape))}) to match "
                f"config.input_shape; got {tuple(x.shape)}.{hint}"
            )
    if len(splits.train) < 2 or len(splits.val) < 1:
        raise ValueError(
            f"fit needs at least 2 training images (a batch of one has no "
            f"batch statistics) and 1 validation image; got "
            f"{len(splits.train)} and {len(splits.val)}."
        )


def fit(
    model: VAE,
    splits: Splits,
    config: VAEConfig | None = None,
    run_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    on_epoch_end: Callable[[dict], None] | None = None,
    flush_denormals: bool = True,
) -> FitResult:
    """Train `model` on splits.train, select on splits.val.

    The test split is never touched. Each epoch writes run_dir/last.pt
    (everything needed to resume), run_dir/best.pt (the weights with the
    lowest validation loss so far) and run_dir/metrics.csv. With resume=True
    a run picks up from last.pt and ends exactly where an uninterrupted run
    would. Random state is seeded per epoch inside a forked RNG, so the
    caller's global RNG is left as it was. Validation always scores
    recon + beta * KL (no warm-up ramp, no free bits, no total-correlation
    penalty): models are selected on the beta-weighted ELBO itself.
    Denormals are flushed while it trains (`flushed_denormals`), unless
    flush_denormals=False.
    """
    config = config or model.config
    _check_splits(splits, config)
    with flushed_denormals(flush_denormals):
        return _fit(
            model, splits, config, run_dir, resume, progress, on_epoch_end
        )


def _fit(
    model: VAE,
    splits: Splits,
    config: VAEConfig,
    run_dir: str | Path | None,
    resume: bool,
    progress: bool,
    on_epoch_end: Callable[[dict], None] | None,
) -> FitResult:
    device = next(model.parameters()).device
    train_x, val_x = (
        splits.train.images.to(device),
        splits.val.images.to(device),
    )
    for x in (train_x, val_x):
        likelihoods.check_pixels(config, x)
    train_y, val_y = (
        (splits.train.labels.to(device), splits.val.labels.to(device))
        if config.num_classes
        else (None, None)
    )
    run_dir = Path(run_dir) if run_dir is not None else None
    optimizer, history = make_optimizer(model, config), []
    scheduler = make_scheduler(optimizer, config)
    start, best_val, best_epoch, bad_epochs = 0, math.inf, 0, 0
    for stale in run_dir.glob(".*.tmp") if run_dir is not None else ():
        # a temporary file of a write that was killed before its rename
        stale.unlink()
    best_model = copy.deepcopy(model.state_dict())
    if resume and run_dir is not None and (run_dir / "last.pt").exists():
        state = _resume_state(run_dir, config, model, optimizer, scheduler)
        start, history, best_model = (
            state["epoch"],
            state["history"],
            state["best_model"],
        )
        best_val, best_epoch, bad_epochs = (
            state["best_val"],
            state["best_epoch"],
            state["bad_epochs"],
        )
        # best.pt and metrics.csv may be an epoch ahead or behind (a crash
        # between writes)
        if best_epoch:
            save_checkpoint(
                run_dir / "best.pt",
                {
                    "model": best_model,
                    "config": config.to_dict(),
                    "epoch": best_epoch,
                    "val_loss": best_val,
                },
            )
            atomic_write(
                run_dir / "metrics.csv",
                lambda tmp: pd.DataFrame(history).to_csv(tmp, index=False),
            )
    stopped_early = (
        bool(config.early_stopping) and bad_epochs >= config.early_stopping
    )
    bar = tqdm(
        total=config.epochs,
        initial=start,
        desc="training",
        unit="epoch",
        disable=not progress,
    )
    fork_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        for epoch in range(start + 1, config.epochs + 1):
            if stopped_early:
                break
            torch.manual_seed(epoch_seed(config.seed, epoch))
            tic, lr = time.perf_counter(), optimizer.param_groups[0]["lr"]
            train = train_epoch(
                model, optimizer, train_x, config, train_y, epoch
            )
            train_seconds = time.perf_counter() - tic
            _check_finite(train, epoch, config, run_dir)
            val = evaluate(
                model, val_x, config.beta, seed=config.seed, labels=val_y
            )
            row = {
                "epoch": epoch,
                "lr": lr,
                **{f"train_{k}": train[k] for k in METRICS},
                **{f"val_{k}": val[k] for k in METRICS},
                "train_seconds": train_seconds,
                "seconds": time.perf_counter() - tic,
            }
            history.append(row)
            if config.scheduler == "plateau":
                scheduler.step(val["loss"])
            elif scheduler is not None:
                scheduler.step()
            if val["loss"] < best_val:
                best_val, best_epoch, bad_epochs = val["loss"], epoch, 0
                best_model = copy.deepcopy(model.state_dict())
            else:
                bad_epochs += 1
            stopped_early = (
                bool(config.early_stopping)
                and bad_epochs >= config.early_stopping
            )
            if run_dir is not None:
                _save_run(
                    run_dir,
                    model,
                    optimizer,
                    scheduler,
                    config,
                    history,
                    best_model,
                    dict(
                        epoch=epoch,
                        best_val=best_val,
                        best_epoch=best_epoch,
                        bad_epochs=bad_epochs,
                    ),
                )
            bar.update(1)
            bar.set_postfix(
                val_loss=f"{val['loss']:.2f}", best=f"{best_val:.2f}"
            )
            if on_epoch_end is not None:
                on_epoch_end(row)
    bar.close()
    model.load_state_dict(best_model)
    model.eval()
    ended_before_last = bool(history) and history[-1]["epoch"] < config.epochs
    return FitResult(
        pd.DataFrame(history),
        best_epoch,
        best_val,
        stopped_early and ended_before_last,
        run_dir,
    )


def _save_run(
    run_dir: Path,
    model,
    optimizer,
    scheduler,
    config: VAEConfig,
    history: list[dict],
    best_model: dict,
    counters: dict,
) -> None:
    """Write best.pt (if it changed), last.pt and metrics.csv, each atomically.

    last.pt also holds the best weights with their score, so resuming never
    pairs the weights of one epoch with the score of another, wherever a
    crash falls between these writes.
    """
    if counters["best_epoch"] == counters["epoch"]:
        save_checkpoint(
            run_dir / "best.pt",
            {
                "model": best_model,
                "config": config.to_dict(),
                "epoch": counters["epoch"],
                "val_loss": counters["best_val"],
            },
        )
    save_checkpoint(
        run_dir / "last.pt",
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict()
            if scheduler is not None
            else None,
            "config": config.to_dict(),
            "history": history,
            "best_model": best_model,
            **counters,
        },
    )
    atomic_write(
        run_dir / "metrics.csv",
        lambda tmp: pd.DataFrame(history).to_csv(tmp, index=False),
    )
