"""Where the ELBO loses: the amortization and the approximation gap.

For one image x the ELBO falls short of log p(x) by KL(q(z|x) || p(z|x)).
Cremer et al. (2018) split that shortfall in two:

    log p(x) - ELBO(x) = [ELBO*(x) - ELBO(x)]  +  [log p(x) - ELBO*(x)]
                          amortization gap        approximation gap

ELBO*(x) is the ELBO of the best Gaussian for this image alone. It is found
by optimising the Gaussian's mean and log-variance with the decoder frozen,
starting from the encoder's output. The amortization gap is what one
shared encoder loses against a per-image fit; the approximation gap is what
even the best diagonal Gaussian loses against the true posterior.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from . import likelihoods
from .losses import gaussian_kl
from .model import VAE

LOG_2PI = math.log(2 * math.pi)
ROWS = 2000  # decoder rows (samples x images) scored at a time (cache-sized)


def _check_model(model: VAE) -> None:
    """Refuse conditional models, which need labels these functions lack."""
    if model.config.num_classes:
        raise ValueError(
            "the inference-gap functions take unconditional models; this "
            f"one is conditional on {model.config.num_classes} classes"
        )


@contextmanager
def frozen(model: VAE) -> Iterator[VAE]:
    """The model in eval mode with no parameter gradients, then restored."""
    was_training = model.training
    wanted = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, w in zip(model.parameters(), wanted):
            p.requires_grad_(w)
        model.train(was_training)


def gaussian_elbo(
    model: VAE,
    x: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    samples: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """One-sample ELBOs of q = N(mu, diag(exp(logvar))): (S, N).

    x: prepared pixels (N, D); mu, logvar: (N, L). Row s is
    log p(x | z_s) - KL(q || p) with z_s ~ q, reparameterised.
    """
    eps = torch.randn(
        (samples, *mu.shape),
        generator=generator,
        device=mu.device,
        dtype=mu.dtype,
    )
    z = mu + torch.exp(0.5 * logvar) * eps  # (S, N, L)
    out = model.decode_logits(z.flatten(0, 1))
    log_px_z = -likelihoods.nll(model.config, out, x.repeat(samples, 1))
    return log_px_z.view(samples, len(x)) - gaussian_kl(mu, logvar)


@contextmanager
def _scoring(
    model: VAE, images: torch.Tensor, seed: int
) -> Iterator[tuple[torch.Tensor, torch.Generator]]:
    """The frozen model's prepared pixels (N, D) and a seeded generator."""
    _check_model(model)
    with frozen(model):
        device = next(model.parameters()).device
        generator = torch.Generator(device=device).manual_seed(seed)
        x = model.flatten(images.to(device))
        yield likelihoods.prepare(model.config, x, generator), generator


def optimise_posterior(
    model: VAE,
    images: torch.Tensor,
    steps: int,
    lr: float,
    samples: int,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image Gaussians refined with the decoder frozen: mu, logvar (N, L).

    Adam on every image's mean and log-variance at once, from the
    encoder's output, maximising the ELBO estimated with `samples` draws
    per step; the step size falls to 0 along a cosine. Adam scales each
    number on its own, so the images do not interact.
    """
    if steps < 1 or samples < 1 or not lr > 0:
        raise ValueError(
            f"need steps >= 1, samples >= 1 and lr > 0; got steps={steps}, "
            f"samples={samples}, lr={lr}"
        )
    with _scoring(model, images, seed) as (x, generator):
        with torch.no_grad():
            mu0, logvar0 = model.encode(x)
        mu = mu0.clone().requires_grad_(True)
        logvar = logvar0.clone().requires_grad_(True)
        opt = torch.optim.Adam([mu, logvar], lr=lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        for _ in range(steps):
            elbo = gaussian_elbo(model, x, mu, logvar, samples, generator)
            opt.zero_grad()
            (-elbo.mean(0).sum()).backward()
            opt.step()
            schedule.step()
    return mu.detach(), logvar.detach()


@torch.no_grad()
def elbo_estimate(
    model: VAE,
    images: torch.Tensor,
    mu: torch.Tensor | None = None,
    logvar: torch.Tensor | None = None,
    samples: int = 100,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image ELBO and its Monte Carlo standard error: (N,), (N,).

    Of the Gaussians (mu, logvar) (N, L), by default the encoder's, with
    `samples` draws per image.
    """
    with _scoring(model, images, seed) as (x, generator):
        if mu is None or logvar is None:
            mu, logvar = model.encode(x)
        per = max(1, ROWS // len(x))  # samples per block of decoder rows
        elbo = torch.cat(
            [
                gaussian_elbo(
                    model, x, mu, logvar, min(per, samples - done), generator
                )
                for done in range(0, samples, per)
            ]
        )
    se = elbo.std(dim=0) / math.sqrt(samples)
    return elbo.mean(dim=0).cpu(), se.cpu()


@torch.no_grad()
def refined_iwae_bound(
    model: VAE,
    images: torch.Tensor,
    mu: torch.Tensor,
    logvar: torch.Tensor,
    k: int,
    seed: int = 0,
) -> torch.Tensor:
    """The IWAE bound on log p(x) with proposals N(mu, exp(logvar)): (N,).

    log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i), z_i ~ q, for the Gaussians
    (N, L) given, such as optimise_posterior's. A bound with any proposal
    is a lower bound on log p(x); a proposal closer to the posterior makes
    it tighter for the same k.
    """
    with _scoring(model, images, seed) as (x, generator):
        std, per = torch.exp(0.5 * logvar), max(1, ROWS // len(x))
        log_w = []
        for done in range(0, k, per):
            eps = torch.randn(
                (min(per, k - done), *mu.shape),
                generator=generator,
                device=mu.device,
                dtype=mu.dtype,
            )
            z = mu + std * eps  # (n, N, L)
            out = model.decode_logits(z.flatten(0, 1))
            log_px_z = -likelihoods.nll(
                model.config, out, x.repeat(len(eps), 1)
            ).view(len(eps), len(x))
            log_pz = -0.5 * (z**2 + LOG_2PI).sum(-1)
            log_qz = -0.5 * (eps**2 + LOG_2PI + logvar).sum(-1)
            log_w.append(log_px_z + log_pz - log_qz)
    return (torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k)).cpu()
