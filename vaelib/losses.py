"""The VAE objective, per image, in nats.

Every function returns one number per image (shape (B,)): sums over pixels and over latent
dimensions, never means. Averages over a data set are then "nats per image", the unit the
book reports, and do not depend on the batch size.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class LossTerms(NamedTuple):
    """Per-image terms, each (B,): loss = recon + beta * kl, and -ELBO = recon + kl."""

    loss: torch.Tensor  # what is minimised: recon + beta * kl
    recon: torch.Tensor  # -E_q[log p(x|z)], one-sample estimate
    kl: torch.Tensor  # KL(q(z|x) || N(0, I)), closed form


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) summed over dims: (B, L) -> (B,).

    Per dimension: 0.5 * (mu^2 + sigma^2 - 1 - log sigma^2).
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) for pixel intensities x in [0, 1] under Bernoulli(sigmoid(logits)): (B, D) -> (B,).

    Uses the logits form, which is exact where sigmoid + BCE would saturate to log(0).
    """
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)


def vae_loss(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
             beta: float = 1.0) -> LossTerms:
    """All terms of the (beta-weighted) negative ELBO for one batch, per image: each (B,)."""
    recon = bernoulli_nll(logits, x.reshape(logits.shape))
    kl = gaussian_kl(mu, logvar)
    return LossTerms(recon + beta * kl, recon, kl)
