"""The chapters' figures: image grids, samples, latent scatter, curves."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from .latent import latent_means, prior_grid
from .model import VAE

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _plt():
    """matplotlib.pyplot, imported on first use (no backend at import)."""
    import matplotlib.pyplot as plt

    return plt


# seaborn's theme, the same for every chapter: no grid behind images,
# colour-blind-safe cycle (C7 stays grey), matplotlib's own font sizes
BOOK_THEME = {"context": "notebook", "style": "ticks", "palette": "colorblind"}


def use_book_theme() -> None:
    """Give every figure drawn after this call the book's seaborn theme."""
    import seaborn as sns

    sns.set_theme(**BOOK_THEME, font_scale=0.85)
    _plt().rcParams.update(
        {"axes.spines.top": False, "axes.spines.right": False}
    )


def image_grid(images: torch.Tensor, ncols: int) -> np.ndarray:
    """(N, 1, H, W) images -> one (rows*H, ncols*W) array, blank-padded."""
    x = (
        images.detach()
        .float()
        .cpu()
        .reshape(len(images), *images.shape[-2:])
        .numpy()
    )
    h, w = x.shape[1:]
    nrows = -(-len(x) // ncols)
    grid = np.zeros((nrows * h, ncols * w), dtype=np.float32)
    for i, img in enumerate(x):
        r, c = divmod(i, ncols)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = img
    return grid


def show_images(
    images: torch.Tensor, ncols: int = 10, title: str | None = None, ax=None
) -> Figure:
    """Show (N, 1, H, W) images in [0, 1] as one grey grid."""
    if ax is None:
        nrows = -(-len(images) // ncols)
        _, ax = _plt().subplots(
            figsize=(ncols * 0.6, nrows * 0.6 + (0.3 if title else 0))
        )
    ax.imshow(image_grid(images, ncols), cmap="gray_r", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title)
    return ax.figure


def plot_image_rows(
    rows: dict[str, torch.Tensor], ncols: int | None = None
) -> Figure:
    """A labelled row of images per entry of `rows` ((N, 1, H, W), [0, 1])."""
    ncols = ncols or max(len(v) for v in rows.values())
    fig, axes = _plt().subplots(
        len(rows), 1, figsize=(ncols * 0.7, 0.95 * len(rows)), squeeze=False
    )
    for ax, (label, images) in zip(axes[:, 0], rows.items()):
        show_images(images, ncols=ncols, ax=ax)
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
    fig.tight_layout()
    return fig


@torch.no_grad()
def plot_reconstructions(
    model: VAE, images: torch.Tensor, n: int = 10
) -> Figure:
    """Top: n inputs; bottom: the decoder's mean at each posterior mean."""
    model.eval()
    x = images[:n].to(next(model.parameters()).device)
    return plot_image_rows(
        {"input": x, "recon.": model.decode(model.encode(x)[0])}
    )


@torch.no_grad()
def plot_generated(
    model: VAE, n: int = 40, ncols: int = 10, seed: int = 0
) -> Figure:
    """n codes z ~ N(0, I): decoder means (left), draws x ~ p(x|z) (right)."""
    model.eval()
    means = model.mean_images(n, torch.Generator().manual_seed(seed))
    # the same codes z
    draws = model.sample(n, torch.Generator().manual_seed(seed))
    nrows = -(-n // ncols)
    fig, axes = _plt().subplots(
        1, 2, figsize=(2 * ncols * 0.6, nrows * 0.6 + 0.4)
    )
    show_images(means, ncols=ncols, title="decoder means E[x | z]", ax=axes[0])
    show_images(draws, ncols=ncols, title="draws x ~ p(x | z)", ax=axes[1])
    fig.tight_layout()
    return fig


def project_2d(z: torch.Tensor) -> tuple[torch.Tensor, str]:
    """(N, L) -> (N, 2): the latent if L <= 2, else its top two PCs."""
    if z.shape[1] == 1:
        return torch.cat([z, torch.zeros_like(z)], dim=1), "z"
    if z.shape[1] == 2:
        return z, "z"
    centred = z - z.mean(dim=0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    return centred @ v[:2].T, "PC"


def plot_latent_scatter(
    model: VAE, images: torch.Tensor, labels: torch.Tensor, ax=None
) -> Figure:
    """Posterior means of `images` by label (PCA to 2-D if latent > 2)."""
    z, prefix = project_2d(latent_means(model, images))
    if ax is None:
        _, ax = _plt().subplots(figsize=(6, 5))
    points = ax.scatter(
        z[:, 0],
        z[:, 1],
        c=labels.cpu(),
        cmap="tab10",
        s=2,
        alpha=0.6,
        vmin=-0.5,
        vmax=9.5,
    )
    ax.figure.colorbar(points, ax=ax, ticks=range(10), label="digit")
    ax.set_xlabel(f"{prefix}$_1$")
    ax.set_ylabel(f"{prefix}$_2$")
    return ax.figure


def plot_training_curves(history: pd.DataFrame) -> Figure:
    """Loss, reconstruction and KL per epoch, train vs validation (nats)."""
    fig, axes = _plt().subplots(1, 3, figsize=(12, 3.2))
    for ax, (key, title) in zip(
        axes,
        [("loss", "objective"), ("recon", "reconstruction"), ("kl", "KL")],
    ):
        ax.plot(
            history["epoch"],
            history[f"train_{key}"],
            label="train (dropout on)",
        )
        ax.plot(history["epoch"], history[f"val_{key}"], label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel("nats per image")
        ax.set_title(title)
    axes[0].legend()
    fig.tight_layout()
    return fig


@torch.no_grad()
def plot_manifold(model: VAE, n: int = 20, tail: float = 0.025) -> Figure:
    """Decoded n x n grid of a 2-D latent at the prior's quantiles."""
    model.eval()
    z = prior_grid(n, tail)
    images = model.decode(z.to(next(model.parameters()).device))
    fig, ax = _plt().subplots(figsize=(7, 7))
    ax.imshow(image_grid(images, n), cmap="gray_r", vmin=0, vmax=1)
    size = images.shape[-1]
    ticks = range(0, n, max(1, n // 5))
    ax.set_xticks(
        [size * i + size / 2 for i in ticks], [f"{z[i, 0]:.1f}" for i in ticks]
    )
    ax.set_yticks(
        [size * i + size / 2 for i in ticks],
        [f"{z[i * n, 1]:.1f}" for i in ticks],
    )
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    return fig
