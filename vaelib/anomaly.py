"""Anomaly scores and how well they separate: ROC curves and their AUROC.

AUROC is the area under the ROC curve. Convention: a higher score means
"more anomalous" (e.g. -ELBO in nats). The AUROC is the probability that a
random anomalous input scores higher than a random normal one, ties counting
one half (the Mann-Whitney U statistic), computed from ranks so that ties are
handled exactly.
"""

from __future__ import annotations

import numpy as np
import torch

from .evaluate import bernoulli_entropy_floor, per_image_terms
from .latent import latent_means
from .model import VAE


def _as_scores(scores, name: str) -> np.ndarray:
    a = (
        scores.detach().cpu().double().numpy()
        if isinstance(scores, torch.Tensor)
        else np.asarray(scores, float)
    )
    if a.ndim != 1 or len(a) == 0 or not np.all(np.isfinite(a)):
        raise ValueError(
            f"{name} must be a non-empty 1-D array of finite scores; "
            f"got shape {a.shape}"
            + ("" if a.ndim != 1 or len(a) == 0 else " with NaN or inf values")
        )
    return a


def auroc(normal, anomalous) -> float:
    """Area under the ROC curve, in [0, 1].

    `normal` holds the scores (N,) of normal inputs, `anomalous` those (M,)
    of anomalous ones.
    """
    neg, pos = _as_scores(normal, "normal"), _as_scores(anomalous, "anomalous")
    values, inverse, counts = np.unique(
        np.concatenate([neg, pos]), return_inverse=True, return_counts=True
    )
    # 1-based ranks, tied values share their average
    mid_ranks = np.cumsum(counts) - (counts - 1) / 2.0
    rank_sum = mid_ranks[inverse[len(neg) :]].sum()
    return float(
        (rank_sum - len(pos) * (len(pos) + 1) / 2.0) / (len(pos) * len(neg))
    )


def roc_curve(normal, anomalous) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False- and true-positive rates for every threshold: (fpr, tpr, t).

    One threshold "score >= t" per distinct score, from t = +inf down.
    """
    neg, pos = _as_scores(normal, "normal"), _as_scores(anomalous, "anomalous")
    thresholds = np.unique(np.concatenate([neg, pos]))[::-1]
    fpr = (
        len(neg) - np.searchsorted(np.sort(neg), thresholds, side="left")
    ) / len(neg)
    tpr = (
        len(pos) - np.searchsorted(np.sort(pos), thresholds, side="left")
    ) / len(pos)
    return np.r_[0.0, fpr], np.r_[0.0, tpr], np.r_[np.inf, thresholds]


@torch.no_grad()
def anomaly_scores(
    model: VAE, images: torch.Tensor, batch_size: int = 2000, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Three per-image anomaly scores (N,), higher = more anomalous, on CPU.

    "neg_elbo": -ELBO in nats; "squared_error": sum of squared pixel errors
    of the reconstruction decoded from the posterior mean; "excess": -ELBO
    minus the image's own pixel-entropy floor, i.e. the nats the model loses
    beyond what the image's grey levels make unavoidable.
    """
    terms = per_image_terms(model, images, batch_size=batch_size, seed=seed)
    neg_elbo = (terms.recon + terms.kl).cpu()
    codes = latent_means(model, images, batch_size)
    device = next(model.parameters()).device
    squared = torch.cat(
        [
            (
                model.decode(codes[i : i + batch_size].to(device)).cpu()
                - images[i : i + batch_size].cpu()
            )
            .pow(2)
            .flatten(1)
            .sum(1)
            for i in range(0, len(images), batch_size)
        ]
    )
    return {
        "neg_elbo": neg_elbo,
        "squared_error": squared,
        "excess": neg_elbo - bernoulli_entropy_floor(images.cpu()).float(),
    }
