"""Latent-space analysis: encodings, prior grids, interpolation and more.

Encodings, grids through the prior, interpolation, neighbours, k-NN, code
statistics.
"""

from __future__ import annotations

import torch

from .model import VAE


@torch.no_grad()
def latent_means(
    model: VAE, images: torch.Tensor, batch_size: int = 2000
) -> torch.Tensor:
    """Posterior means mu(x) of all images: (N, C, H, W) -> (N, L), on CPU."""
    model.eval()
    device = next(model.parameters()).device
    return torch.cat(
        [
            model.encode(images[i : i + batch_size].to(device))[0].cpu()
            for i in range(0, len(images), batch_size)
        ]
    )


def prior_grid(n: int = 20, tail: float = 0.025) -> torch.Tensor:
    """An n x n grid of 2-D codes at the prior's quantiles: (n*n, 2).

    On each axis the quantiles run from tail to 1 - tail; rows = z2.
    """
    q = torch.linspace(tail, 1 - tail, n, dtype=torch.float64)
    values = torch.distributions.Normal(0.0, 1.0).icdf(q).float()
    # top row = largest z2
    z2, z1 = torch.meshgrid(values.flip(0), values, indexing="ij")
    return torch.stack([z1.reshape(-1), z2.reshape(-1)], dim=1)


def interpolate(
    z0: torch.Tensor, z1: torch.Tensor, steps: int = 10, method: str = "linear"
) -> torch.Tensor:
    """Codes from z0 to z1 (both (L,)): (steps, L).

    Along a straight line, or with 'slerp' along the great circle.
    """
    t = torch.linspace(0, 1, steps, dtype=z0.dtype)[:, None]
    if method == "linear":
        return (1 - t) * z0 + t * z1
    if method != "slerp":
        raise ValueError(f"method must be 'linear' or 'slerp'; got {method!r}")
    cos = torch.dot(z0, z1) / (z0.norm() * z1.norm())
    omega = torch.arccos(cos.clamp(-1.0, 1.0))
    if omega.abs() < 1e-6:  # (nearly) parallel: slerp is the straight line
        return (1 - t) * z0 + t * z1
    return (
        torch.sin((1 - t) * omega) * z0 + torch.sin(t * omega) * z1
    ) / torch.sin(omega)


def traversals(z: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """Copies of z (L,) with z[d] set to each value, for each d: (L * V, L)."""
    latent_dim, n_values = len(z), len(values)
    codes = z.repeat(latent_dim * n_values, 1)
    for d in range(latent_dim):
        codes[d * n_values : (d + 1) * n_values, d] = values
    return codes


def nearest_neighbours(
    queries: torch.Tensor, reference: torch.Tensor, batch_size: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each query row's nearest reference row: indices (Q,), distances (Q,).

    The distance is Euclidean.
    """
    q, r = queries.flatten(1).float(), reference.flatten(1).float()
    best_d, best_i = [], []
    for start in range(0, len(q), batch_size):
        d, i = torch.cdist(q[start : start + batch_size], r).min(dim=1)
        best_d.append(d)
        best_i.append(i)
    return torch.cat(best_i), torch.cat(best_d)


def knn_predict(
    train_z: torch.Tensor,
    train_y: torch.Tensor,
    test_z: torch.Tensor,
    k: int = 5,
    batch_size: int = 1000,
) -> torch.Tensor:
    """Majority label of the k nearest training codes: (N_test,).

    Ties go to the smallest label.
    """
    if not 1 <= k <= len(train_z):
        raise ValueError(
            f"k must be between 1 and the number of training points "
            f"({len(train_z)}); got {k}"
        )
    n_classes = int(train_y.max()) + 1
    predictions = []
    for start in range(0, len(test_z), batch_size):
        idx = (
            torch.cdist(test_z[start : start + batch_size], train_z)
            .topk(k, largest=False)
            .indices
        )
        votes = torch.zeros(len(idx), n_classes).scatter_add_(
            1, train_y[idx], torch.ones(idx.shape)
        )
        predictions.append(votes.argmax(dim=1))
    return torch.cat(predictions)


def knn_accuracy(
    train_z: torch.Tensor,
    train_y: torch.Tensor,
    test_z: torch.Tensor,
    test_y: torch.Tensor,
    k: int = 5,
) -> float:
    """Fraction of test codes whose k-NN majority label is right."""
    return (
        (knn_predict(train_z, train_y.cpu(), test_z, k) == test_y.cpu())
        .float()
        .mean()
        .item()
    )


def prior_mismatch(z: torch.Tensor) -> float:
    """How far the spread of codes z (N, L) is from the N(0, I) prior's.

    The codes are drawn over the data; the result is ||Cov[z] - I||_F.
    """
    if z.ndim != 2 or len(z) < 2:
        raise ValueError(
            f"prior_mismatch expects codes of shape (N, L) with N >= 2; "
            f"got {tuple(z.shape)}"
        )
    cov = torch.atleast_2d(torch.cov(z.double().T))
    return torch.linalg.matrix_norm(
        cov - torch.eye(z.shape[1], dtype=cov.dtype, device=cov.device)
    ).item()


def mean_abs_correlation(z: torch.Tensor) -> float:
    """Average |Pearson correlation| between different columns of z (N, L).

    Needs L >= 2; 0 = uncorrelated.
    """
    if z.ndim != 2 or z.shape[1] < 2 or len(z) < 2:
        raise ValueError(
            f"mean_abs_correlation expects (N, L) with N, L >= 2; "
            f"got {tuple(z.shape)}"
        )
    c = torch.corrcoef(z.double().T).abs()
    n = len(c)
    return ((c.sum() - c.diagonal().sum()) / (n * (n - 1))).item()
