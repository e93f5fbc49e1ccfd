"""The VAE objective, per image, in nats.

Every function returns one number per image (shape (B,)): sums over pixels
and over latent dimensions, never means. Averages over a data set are then
"nats per image", the unit the book reports, and do not depend on the batch
size.

One negative log-likelihood per decoder likelihood: `bernoulli_nll` (the
classic choice, not a density on grey levels), `continuous_bernoulli_nll`,
`gaussian_nll` and `discretized_logistic_nll` (8-bit pixels).
`vaelib.likelihoods` picks one from the config.
"""

from __future__ import annotations

from typing import NamedTuple

import math
from typing import Callable

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)
LEVELS = 255  # 8-bit pixels take the values k / LEVELS, k = 0..LEVELS


class LossTerms(NamedTuple):
    """Per-image terms, each (B,).

    loss = recon + beta * kl, and -ELBO = recon + kl.
    """

    loss: torch.Tensor  # what is minimised: recon + beta * kl
    recon: torch.Tensor  # -E_q[log p(x|z)], one-sample estimate
    kl: torch.Tensor  # KL(q(z|x) || N(0, I)), closed form


def gaussian_kl_per_dim(
    mu: torch.Tensor, logvar: torch.Tensor
) -> torch.Tensor:
    """KL(N(mu_j, exp(logvar_j)) || N(0, 1)) of every latent dimension.

    (B, L) -> (B, L).
    """
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)): (B, L) -> (B,).

    The per-dimension KLs summed.
    """
    return gaussian_kl_per_dim(mu, logvar).sum(dim=1)


def bernoulli_nll(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Bernoulli cross-entropy of pixels x in [0, 1] against sigmoid(logits).

    Summed over pixels: (B, D) -> (B,). For black-and-white pixels this is
    -log p(x|z). For grey levels it is not: Bern(x; p) = p^x (1 - p)^(1 - x)
    does not integrate to 1 over x in [0, 1], so the number is no negative
    log-density (`log_cb_normaliser` is what is missing). Uses the logits
    form, which is exact where sigmoid + BCE would saturate to log(0).
    """
    return F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(
        dim=1
    )


def log_cb_normaliser(logits: torch.Tensor) -> torch.Tensor:
    """log C(lambda) of the continuous Bernoulli, lambda = sigmoid(logits).

    Elementwise. In terms of the logit l,

        C = 2 artanh(1 - 2 lambda) / (1 - 2 lambda) = l / tanh(l / 2):

    even in l, 2 at l = 0 (lambda = 1/2), about |l| for large |l|. Written as
    log|l| - log tanh(|l|/2) with tanh in expm1/log1p form, and a Taylor
    series log 2 + l^2 / 12 near l = 0.
    """
    a = logits.abs()
    near_half = a < 1e-3
    # keeps NaN out of the unused branch's gradient
    safe = torch.where(near_half, torch.ones_like(a), a)
    # log tanh(safe / 2)
    log_tanh = torch.log(-torch.expm1(-safe)) - torch.log1p(torch.exp(-safe))
    return torch.where(
        near_half, math.log(2) + logits.pow(2) / 12, safe.log() - log_tanh
    )


def continuous_bernoulli_nll(
    logits: torch.Tensor, x: torch.Tensor
) -> torch.Tensor:
    """-log p(x|z) under the continuous Bernoulli: (B, D) -> (B,).

    A density on [0, 1] (Loaiza-Ganem & Cunningham, 2019): the Bernoulli
    cross-entropy minus the log normaliser of every pixel.
    """
    return bernoulli_nll(logits, x) - log_cb_normaliser(logits).sum(dim=1)


def gaussian_nll(
    mean: torch.Tensor, sigma: torch.Tensor | float, x: torch.Tensor
) -> torch.Tensor:
    """-log N(x; mean, sigma^2) summed over pixels: (B, D) -> (B,).

    sigma is a number or (B, D).
    """
    sigma = torch.as_tensor(sigma, dtype=mean.dtype, device=mean.device)
    return (
        (0.5 * ((x - mean) / sigma).pow(2) + sigma.log() + 0.5 * LOG_2PI)
        .expand_as(x)
        .sum(dim=1)
    )


def discretized_logistic_log_probs(
    loc: torch.Tensor, scale: torch.Tensor, k: torch.Tensor
) -> torch.Tensor:
    """log P(pixel = k) of a logistic(loc, scale) rounded to the grid k / 255.

    Elementwise; the logistic lives on [0, 1]. Bin k covers
    [(k - 1/2) / 255, (k + 1/2) / 255); the edge bins take the tails (k = 0
    everything below 1/510, k = 255 everything above 1 - 1/510), so the 256
    probabilities sum to 1. With a > b the bin's edges in scale units,
    P = sigmoid(a) - sigmoid(b) = sigmoid(a) sigmoid(-b) (1 - exp(b - a)),
    computed in logs; an edge bin drops the terms of its open end. (Infinite
    edges would give the same values, but NaN gradients: inf * 0 in the
    backward pass.)
    """
    inv = scale.reciprocal()
    centred = k / LEVELS - loc
    a, b = (centred + 0.5 / LEVELS) * inv, (centred - 0.5 / LEVELS) * inv
    top, bottom = k >= LEVELS, k <= 0  # functions of k only: cheap, broadcast
    zero = torch.zeros((), dtype=a.dtype, device=a.device)
    # log P(below the upper edge); 0 for the top bin
    upper = torch.where(top, zero, F.logsigmoid(a))
    # log P(above the lower edge); 0 for the bottom bin
    lower = torch.where(bottom, zero, F.logsigmoid(-b))
    # log(1 - exp(b - a))
    width = torch.where(
        top | bottom, zero, torch.log(-torch.expm1(-inv / LEVELS))
    )
    return upper + lower + width


def discretized_logistic_nll(
    loc: torch.Tensor, scale: torch.Tensor, k: torch.Tensor
) -> torch.Tensor:
    """-log P(x|z) of 8-bit pixels k under a discretized logistic.

    k holds the integers 0..255 as floats: (B, D) -> (B,).
    """
    return -discretized_logistic_log_probs(loc, scale, k).sum(dim=1)


def free_bits_kl(
    mu: torch.Tensor, logvar: torch.Tensor, free_bits: float
) -> torch.Tensor:
    """The KL penalty with free bits (Kingma et al., 2016): (B, L) -> (B,).

    A latent dimension whose KL, averaged over the batch, is below
    `free_bits` nats costs a constant `free_bits` (so no gradient pushes it
    to zero); dimensions above pay their KL as usual. The batch mean of the
    result is sum_j max(free_bits, mean_i KL_ij).
    """
    kl = gaussian_kl_per_dim(mu, logvar)  # (B, L)
    below = kl.mean(dim=0, keepdim=True) < free_bits  # (1, L)
    return torch.where(below, torch.full_like(kl, free_bits), kl).sum(dim=1)


def batch_aggregate(
    z: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    dataset_size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """log q(z_i) (B,) and log q(z_ij) (B, L), estimated from one batch.

    q(z) = (1/N) sum_n q(z|x_n) is the aggregate posterior of N images; the
    codes z (B, L) were drawn from the batch's own Gaussians (mu, logvar).
    Each image's own Gaussian enters with weight 1/N, the other B - 1 stand
    in for the other N - 1 images with (N - 1) / (N (B - 1)) each. For a
    fixed code the estimate of q(z) is unbiased over random batches, and
    exact when the batch is the whole data set; its log is biased low
    (Jensen), less so the larger B. The same holds per dimension.
    """
    n, b = dataset_size, len(z)
    if b < 2 or n < b:
        raise ValueError(
            f"the batch estimate of q(z) needs 2 <= batch size <= "
            f"dataset_size; got batch {b}, dataset_size {n}"
        )
    # log q(z_ij | x_k) for every pair of images (i, k): (B, B, L)
    log_pdf = -0.5 * (
        (z[:, None] - mu[None]) ** 2 * torch.exp(-logvar[None])
        + logvar[None]
        + LOG_2PI
    )
    log_w = torch.full(
        (b, b),
        math.log((n - 1) / (n * (b - 1))),
        device=z.device,
        dtype=z.dtype,
    )
    log_w.fill_diagonal_(-math.log(n))
    return (
        torch.logsumexp(log_pdf.sum(-1) + log_w, dim=1),
        torch.logsumexp(log_pdf + log_w[..., None], dim=1),
    )


def total_correlation(
    z: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    dataset_size: int,
) -> torch.Tensor:
    """Per-image estimate of log q(z) - sum_j log q(z_j): (B, L) -> (B,).

    The total correlation of the aggregate posterior (Chen et al., 2018) at
    the batch's codes, both densities from `batch_aggregate`.
    """
    log_joint, log_marginals = batch_aggregate(z, mu, logvar, dataset_size)
    return log_joint - log_marginals.sum(-1)


def vae_loss(
    logits: torch.Tensor,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    beta: float = 1.0,
    free_bits: float = 0.0,
    nll: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = bernoulli_nll,
    kl: torch.Tensor | None = None,
    tc: torch.Tensor | None = None,
    tc_penalty: float = 0.0,
) -> LossTerms:
    """All terms of the (beta-weighted) negative ELBO for one batch.

    Per image: each (B,). `nll(decoder outputs, x (B, D))` scores the pixels
    (`vaelib.likelihoods.nll_function` gives the config's). `kl` (B,) is
    the KL where it has no closed form (`VAE.kl`), else it is computed from
    mu and logvar. With free_bits > 0 the loss's KL penalty is
    `free_bits_kl`; the reported kl is always the true KL. With
    tc_penalty > 0 the loss adds tc_penalty * tc, the batch's total
    correlation estimate (`total_correlation`): the beta-TCVAE.
    """
    recon = nll(logits, x.reshape(len(x), -1))
    kl = gaussian_kl(mu, logvar) if kl is None else kl
    penalty = free_bits_kl(mu, logvar, free_bits) if free_bits > 0 else kl
    loss = recon + beta * penalty
    if tc_penalty:
        loss = loss + tc_penalty * tc
    return LossTerms(loss, recon, kl)
