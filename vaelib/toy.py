"""Toy latent-variable models small enough that log p(x) is known.

They are the ELBO chapter's test bench. Everything is one-dimensional (z and x
are scalars) and broadcasts over tensors; float64 is used so that identities
can be checked to machine precision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

LOG_2PI = math.log(2 * math.pi)


def normal_log_prob(x: torch.Tensor, mean, var) -> torch.Tensor:
    """log N(x; mean, var), elementwise."""
    var = torch.as_tensor(var, dtype=torch.float64)
    return -0.5 * (LOG_2PI + torch.log(var) + (x - mean) ** 2 / var)


@dataclass(frozen=True)
class LinearGaussian:
    """z ~ N(0, 1), x | z ~ N(w z + b, s^2).

    Marginal and posterior are Gaussian, in closed form.
    """

    w: float = 2.0  # how strongly x depends on z
    b: float = 0.5  # offset of x
    s: float = 0.8  # observation noise standard deviation

    def log_joint(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x, z) = log p(z) + log p(x | z)."""
        return normal_log_prob(z, 0.0, 1.0) + normal_log_prob(
            x, self.w * z + self.b, self.s**2
        )

    def log_marginal(self, x: torch.Tensor) -> torch.Tensor:
        """log p(x): x ~ N(b, w^2 + s^2)."""
        return normal_log_prob(x, self.b, self.w**2 + self.s**2)

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and variance of p(z | x), by completing the square."""
        var = 1.0 / (1.0 + self.w**2 / self.s**2)
        return var * self.w * (x - self.b) / self.s**2, torch.full_like(x, var)

    def elbo(
        self, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
    ) -> torch.Tensor:
        """E_q[log p(x|z)] - KL(q || p(z)) in closed form.

        For q = N(mu, exp(logvar)).
        """
        var = logvar.exp()
        expected_loglik = -0.5 * (
            LOG_2PI
            + math.log(self.s**2)
            + ((x - self.b - self.w * mu) ** 2 + self.w**2 * var) / self.s**2
        )
        kl_prior = 0.5 * (mu**2 + var - 1.0 - logvar)
        return expected_loglik - kl_prior

    def kl_to_posterior(
        self, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
    ) -> torch.Tensor:
        """KL(q || p(z | x)) between two one-dimensional Gaussians."""
        post_mean, post_var = self.posterior(x)
        var = logvar.exp()
        return 0.5 * (
            torch.log(post_var)
            - logvar
            + (var + (mu - post_mean) ** 2) / post_var
            - 1.0
        )


def log_marginal_numerical(
    log_joint: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    z_min: float = -12.0,
    z_max: float = 12.0,
    n: int = 24_001,
) -> torch.Tensor:
    """log p(x) = log of the integral of p(x, z) dz: x (N,) -> (N,).

    By the trapezoid rule on a grid.
    """
    z = torch.linspace(z_min, z_max, n, dtype=torch.float64)
    log_weights = torch.full(
        (n,), math.log((z_max - z_min) / (n - 1)), dtype=torch.float64
    )
    log_weights[[0, -1]] -= math.log(2.0)
    return torch.logsumexp(
        log_joint(x[:, None], z[None, :]) + log_weights, dim=1
    )


def reparam_gradients(
    f: Callable[[torch.Tensor], torch.Tensor],
    mu: float,
    logvar: float,
    n: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """n one-sample estimates of d/d(mu, logvar) E_q[f(z)]: (n, 2).

    q = N(mu, exp(logvar)), reparameterised as z = mu + sigma eps.
    """
    eps = torch.randn(n, generator=generator, dtype=torch.float64)
    mus = torch.full((n,), mu, dtype=torch.float64, requires_grad=True)
    logvars = torch.full((n,), logvar, dtype=torch.float64, requires_grad=True)
    f(mus + torch.exp(0.5 * logvars) * eps).sum().backward()
    return torch.stack([mus.grad, logvars.grad], dim=1)


def score_gradients(
    f: Callable[[torch.Tensor], torch.Tensor],
    mu: float,
    logvar: float,
    n: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """n one-sample score-function (REINFORCE) estimates: (n, 2).

    Each is f(z) * d/d(mu, logvar) log q(z).
    """
    var = math.exp(logvar)
    z = mu + math.sqrt(var) * torch.randn(
        n, generator=generator, dtype=torch.float64
    )
    score = torch.stack(
        [(z - mu) / var, 0.5 * ((z - mu) ** 2 / var - 1.0)], dim=1
    )
    return f(z)[:, None] * score
