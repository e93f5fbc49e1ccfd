"""Learned priors p(z): a mixture of Gaussians and the VampPrior.

The standard prior N(0, I) is fixed, and the aggregate posterior q(z) of a
trained VAE rarely fills it: prior draws land in holes no code visits. A
learned prior can follow q(z) instead:

- "mog": p(z) = sum_k w_k N(z; m_k, diag(s_k^2)), weights, means and
  scales learned with the rest of the model;
- "vamp" (Tomczak & Welling, 2018): p(z) = (1/K) sum_k q(z | u_k), the
  encoder's own posteriors at K learned pseudo-inputs u_k, the prior that
  would be optimal if the u_k were the training images.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from .repro import draw_on

LOG_2PI = math.log(2 * math.pi)
# pseudo-inputs start as sigmoid(N(0, PSEUDO_INIT^2)): grey images
PSEUDO_INIT = 0.1


def log_mixture(
    z: torch.Tensor,
    means: torch.Tensor,
    logvars: torch.Tensor,
    log_weights: torch.Tensor,
) -> torch.Tensor:
    """log sum_k w_k N(z; means_k, exp(logvars_k)): (..., L) -> (...).

    means, logvars (K, L); log_weights (K,), normalised.
    """
    z = z.unsqueeze(-2)  # (..., 1, L)
    log_pdf = -0.5 * (
        (z - means) ** 2 * torch.exp(-logvars) + logvars + LOG_2PI
    ).sum(-1)  # (..., K)
    return torch.logsumexp(log_pdf + log_weights, dim=-1)


def sample_mixture(
    n: int,
    means: torch.Tensor,
    logvars: torch.Tensor,
    log_weights: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """n draws (n, L) from the mixture: a component, then its Gaussian."""
    on = draw_on(generator, means.device)
    k = torch.multinomial(
        log_weights.exp().to(on), n, replacement=True, generator=generator
    ).to(means.device)
    eps = torch.randn((n, means.shape[1]), generator=generator, device=on).to(
        means.device
    )
    return means[k] + torch.exp(0.5 * logvars[k]) * eps


class MixturePrior(nn.Module):
    """A learned mixture of K diagonal Gaussians in L dimensions."""

    def __init__(self, components: int, latent: int):
        super().__init__()
        self.means = nn.Parameter(torch.randn(components, latent))
        self.logvars = nn.Parameter(torch.zeros(components, latent))
        self.logits = nn.Parameter(torch.zeros(components))

    def mixture(self, encode=None):
        """means, logvars (K, L) and log-weights (K,)."""
        return self.means, self.logvars, self.logits.log_softmax(0)


class VampPrior(nn.Module):
    """(1/K) sum_k q(z | u_k) over K learned pseudo-inputs u_k in [0, 1]."""

    def __init__(self, components: int, input_dim: int):
        super().__init__()
        self.pseudo = nn.Parameter(
            PSEUDO_INIT * torch.randn(components, input_dim)
        )

    def pseudo_inputs(self) -> torch.Tensor:
        """The pseudo-inputs as images (K, D) with pixels in (0, 1)."""
        return torch.sigmoid(self.pseudo)

    def mixture(
        self,
        encode: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    ):
        """means, logvars (K, L) of q(z | u_k), and uniform log-weights."""
        means, logvars = encode(self.pseudo_inputs())
        k = len(means)
        return means, logvars, torch.full_like(means[:, 0], -math.log(k))
