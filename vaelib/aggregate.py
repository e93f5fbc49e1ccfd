"""The aggregate posterior q(z) = (1/N) sum_n q(z | x_n), and what it shows.

Over N images the encoder's Gaussians add up to a mixture, the codes the
decoder actually sees. Two uses:

- ELBO surgery (Hoffman & Johnson 2016): the rate splits exactly into
  R = I_q(x; z) + KL(q(z) || p(z)), the information the code carries about
  which image it came from plus how far the codes' mixture is from the
  prior.
- Prior holes: regions the prior covers but no code visits. Decoding a
  prior draw from there shows the decoder something it never trained on.

Both use the mixture over the N images given, so they describe the
*empirical* aggregate posterior of those images: I_q can be at most log N.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

from .losses import gaussian_kl
from .model import VAE, reparameterize

CHUNK = 2048  # codes scored against the mixture at a time (memory)


@torch.no_grad()
def posterior_params(
    model: VAE, images: torch.Tensor, batch_size: int = 2000
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder outputs of all images, on CPU: (N, ...) -> mu, logvar (N, L)."""
    model.eval()
    device = next(model.parameters()).device
    out = [
        model.encode(images[i : i + batch_size].to(device))
        for i in range(0, len(images), batch_size)
    ]
    return (
        torch.cat([mu for mu, _ in out]).cpu(),
        torch.cat([lv for _, lv in out]).cpu(),
    )


def _check(mu: torch.Tensor, logvar: torch.Tensor) -> None:
    """Raise a clear error unless mu and logvar are matching (N, L)."""
    if mu.ndim != 2 or mu.shape != logvar.shape or len(mu) < 2:
        raise ValueError(
            "mu and logvar must both have shape (N, L) with N >= 2 images; "
            f"got {tuple(mu.shape)} and {tuple(logvar.shape)}"
        )


def log_normal(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) of each row: (M, L) -> (M,)."""
    return -0.5 * (z.double() ** 2 + math.log(2 * math.pi)).sum(1)


def log_aggregate(
    z: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> torch.Tensor:
    """log q(z) of codes z (M, L) under the mixture of N Gaussians: (M,).

    q(z) = (1/N) sum_n N(z; mu_n, diag(exp(logvar_n))), in float64.
    """
    _check(mu, logvar)
    mu, logvar = mu.double(), logvar.double()
    inv_var = torch.exp(-logvar)
    # sum_j (z_j - mu_nj)^2 / var_nj expanded into matrix products
    const = -0.5 * (
        (logvar + math.log(2 * math.pi)).sum(1) + (mu**2 * inv_var).sum(1)
    )  # (N,)
    out = []
    for zc in z.double().split(CHUNK):
        # (M', N): log N(z_m; mu_n, var_n) summed over dimensions
        log_pdf = const + zc @ (mu * inv_var).T - 0.5 * (zc**2) @ inv_var.T
        out.append(torch.logsumexp(log_pdf, dim=1))
    return torch.cat(out) - math.log(len(mu))


def elbo_surgery(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    generator: torch.Generator,
    samples: int = 1,
    log_prior: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, float]:
    """Rate R and its two parts, in nats per image, from (N, L) posteriors.

    With z ~ q(z|x_n), `samples` per image, Monte Carlo averages of
    log q(z|x_n) - log q(z) (the mutual information I_q, at most log N)
    and of log q(z) - log p(z) (the marginal KL) are returned with the
    rate and their Monte Carlo standard errors. p(z) is N(0, I), where the
    rate is exact (the mean analytic KL), or `log_prior` (codes (M, L) ->
    (M,), such as a learned prior's `VAE.log_prior`), where the rate is
    the Monte Carlo sum of the two parts.
    """
    _check(mu, logvar)
    mu_s = mu.double().repeat(samples, 1)
    lv_s = logvar.double().repeat(samples, 1)
    z = reparameterize(mu_s, lv_s, generator)
    posterior = torch.distributions.Normal(mu_s, (0.5 * lv_s).exp())
    log_cond = posterior.log_prob(z).sum(1)  # log q(z | x_n)
    log_q = log_aggregate(z, mu, logvar)
    log_p = log_normal(z) if log_prior is None else log_prior(z).double()
    info, marginal = log_cond - log_q, log_q - log_p
    # Monte Carlo error over z; the spread between the (fixed) images is
    # counted in too, so these errors are upper bounds
    se = torch.stack([info, marginal]).std(dim=1) / math.sqrt(len(z))
    rate = (
        gaussian_kl(mu.double(), logvar.double()).mean()
        if log_prior is None
        else (info + marginal).mean()
    )
    return {
        "rate": rate.item(),
        "mutual_info": info.mean().item(),
        "marginal_kl": marginal.mean().item(),
        "mutual_info_se": se[0].item(),
        "marginal_kl_se": se[1].item(),
        "log_n": math.log(len(mu)),
    }


def prior_hole_fraction(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    generator: torch.Generator,
    prior_draws: int = 10_000,
    level: float = 0.01,
    codes_per_image: int = 4,
    prior_codes: torch.Tensor | None = None,
) -> float:
    """Share of prior draws in holes of the aggregate posterior (N, L).

    A random half of the images makes the mixture q; codes_per_image
    codes from each image of the other half set the threshold, the
    `level` quantile of log q at codes the model really uses. The result is
    the share of z ~ N(0, I) with log q(z) below it: about `level` if q
    matched the prior, more the more prior mass sits where codes are rarer
    than almost all real ones. `prior_codes` (M, L), draws from another
    prior (such as a learned one's `VAE.prior_sample`), replace the
    `prior_draws` draws from N(0, I).
    """
    _check(mu, logvar)
    if not 0 < level < 1 or len(mu) < 4:
        raise ValueError(
            f"need 0 < level < 1 and N >= 4 images; got level={level}, "
            f"N={len(mu)}"
        )
    order = torch.randperm(len(mu), generator=generator)
    mix, ref = order[: len(mu) // 2], order[len(mu) // 2 :]
    half_mu, half_lv = mu[mix], logvar[mix]
    codes = reparameterize(
        mu[ref].double().repeat(codes_per_image, 1),
        logvar[ref].double().repeat(codes_per_image, 1),
        generator,
    )
    prior = (
        torch.randn(
            prior_draws, mu.shape[1], generator=generator, dtype=torch.float64
        )
        if prior_codes is None
        else prior_codes.double().cpu()
    )
    threshold = torch.quantile(log_aggregate(codes, half_mu, half_lv), level)
    below = log_aggregate(prior, half_mu, half_lv) < threshold
    return below.double().mean().item()


def kl_decomposition(
    mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator
) -> dict[str, float]:
    """The marginal KL split: total correlation + dimension-wise KL (nats).

    KL(q(z) || N(0, I)) = TC + sum_j KL(q(z_j) || N(0, 1)), where
    TC = KL(q(z) || prod_j q(z_j)) measures how dependent the code's
    dimensions are (Chen et al., 2018). One code per image (N, L), scored
    under the mixture and under each dimension's 1-D mixture
    (`log_aggregate`); Monte Carlo standard errors as in `elbo_surgery`.
    """
    _check(mu, logvar)
    z = reparameterize(mu.double(), logvar.double(), generator)
    log_q = log_aggregate(z, mu, logvar)
    log_q_dims = sum(
        log_aggregate(z[:, [j]], mu[:, [j]], logvar[:, [j]])
        for j in range(mu.shape[1])
    )
    tc, dim_kl = log_q - log_q_dims, log_q_dims - log_normal(z)
    se = torch.stack([tc, dim_kl]).std(dim=1) / math.sqrt(len(z))
    return {
        "total_correlation": tc.mean().item(),
        "dimension_kl": dim_kl.mean().item(),
        "total_correlation_se": se[0].item(),
        "dimension_kl_se": se[1].item(),
    }
