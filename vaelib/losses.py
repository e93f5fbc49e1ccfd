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


def gaussian_kl_per_dim(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_j, exp(logvar_j)) || N(0, 1)) of every latent dimension: (B, L) -> (B, L)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)): the per-dimension KLs summed, (B, L) -> (B,)."""
    return gaussian_kl_per_dim(mu, logvar).sum(dim=1)


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) for pixel intensities x in [0, 1] under Bernoulli(sigmoid(logits)): (B, D) -> (B,).

    Uses the logits form, which is exact where sigmoid + BCE would saturate to log(0).
    """
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)


def free_bits_kl(mu: torch.Tensor, logvar: torch.Tensor, free_bits: float) -> torch.Tensor:
    """The KL penalty with free bits (Kingma et al., 2016): (B, L) -> (B,).

    A latent dimension whose KL, averaged over the batch, is below `free_bits` nats costs a constant
    `free_bits` (so no gradient pushes it to zero); dimensions above pay their KL as usual. The batch
    mean of the result is sum_j max(free_bits, mean_i KL_ij).
    """
    kl = gaussian_kl_per_dim(mu, logvar)  # (B, L)
    below = kl.mean(dim=0, keepdim=True) < free_bits  # (1, L)
    return torch.where(below, torch.full_like(kl, free_bits), kl).sum(dim=1)


def vae_loss(logits: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
             beta: float = 1.0, free_bits: float = 0.0) -> LossTerms:
    """All terms of the (beta-weighted) negative ELBO for one batch, per image: each (B,).

    With free_bits > 0 the loss's KL penalty is `free_bits_kl`; the reported kl is always the true KL.
    """
    recon = bernoulli_nll(logits, x.reshape(logits.shape))
    kl = gaussian_kl(mu, logvar)
    penalty = free_bits_kl(mu, logvar, free_bits) if free_bits > 0 else kl
    return LossTerms(recon + beta * penalty, recon, kl)
