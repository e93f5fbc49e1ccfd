"""Where the ELBO loses: the amortization and the approximation gap.

For one image x the ELBO falls short of log p(x) by KL(q(z|x) || p(z|x)).
Cremer et al. (2018) split that shortfall in two:

    log p(x) - ELBO(x) = [ELBO*(x) - ELBO(x)]  +  [log p(x) - ELBO*(x)]
                          amortization gap        approximation gap

ELBO*(x) is the ELBO of the best posterior of the model's family for this
image alone. It is found by optimising what the encoder outputs for the
image (a Gaussian's mean and log-variance; for a flow posterior also the
context that steers the flow) with the decoder and the flow frozen, starting
from the encoder's output. The amortization gap is what one shared encoder
loses against a per-image fit; the approximation gap is what even the best
member of the family loses against the true posterior.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch

from . import likelihoods
from .losses import gaussian_kl
from .model import VAE, Posterior

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


def _noise(post: Posterior, samples: int, generator) -> torch.Tensor:
    """eps ~ N(0, I) of shape (samples, N, L) for the posteriors `post`."""
    return torch.randn(
        (samples, *post.mu.shape),
        generator=generator,
        device=post.mu.device,
        dtype=post.mu.dtype,
    )


def posterior_elbo(
    model: VAE,
    x: torch.Tensor,
    post: Posterior,
    samples: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """One-sample ELBOs of the posteriors `post` of images x: (S, N).

    x: prepared pixels (N, D); post: (N, L) Gaussians [and contexts]. Row s
    is log p(x | z_s) - KL(q || p) with z_s ~ q, reparameterised; the KL is
    the closed form where there is one, else log q(z_s) - log p(z_s).
    """
    eps = _noise(post, samples, generator)
    z, log_q = model.draw(post, eps)  # (S, N, L), (S, N)
    out = model.decode_logits(z.flatten(0, 1))
    log_px_z = -likelihoods.nll(model.config, out, x.repeat(samples, 1))
    if model.config.closed_form_kl:
        kl = gaussian_kl(post.mu, post.logvar)
    else:
        kl = log_q - model.log_prior(z)
    return log_px_z.view(samples, len(x)) - kl


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
) -> Posterior:
    """Per-image posteriors refined with the decoder frozen: (N, L) each.

    Adam on every image's mean and log-variance (and a flow's context) at
    once, from the encoder's output, maximising the ELBO estimated with
    `samples` draws per step; the step size falls to 0 along a cosine.
    Adam scales each number on its own, so the images do not interact.
    """
    if steps < 1 or samples < 1 or not lr > 0:
        raise ValueError(
            f"need steps >= 1, samples >= 1 and lr > 0; got steps={steps}, "
            f"samples={samples}, lr={lr}"
        )
    with _scoring(model, images, seed) as (x, generator):
        with torch.no_grad():
            start = model.posterior(x)
        post = Posterior(
            *(
                None if t is None else t.clone().requires_grad_(True)
                for t in start
            )
        )
        opt = torch.optim.Adam([t for t in post if t is not None], lr=lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
        for _ in range(steps):
            elbo = posterior_elbo(model, x, post, samples, generator)
            opt.zero_grad()
            (-elbo.mean(0).sum()).backward()
            opt.step()
            schedule.step()
    return Posterior(*(None if t is None else t.detach() for t in post))


@torch.no_grad()
def elbo_estimate(
    model: VAE,
    images: torch.Tensor,
    post: Posterior | None = None,
    samples: int = 100,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image ELBO and its Monte Carlo standard error: (N,), (N,).

    Of the posteriors `post` (N, L), by default the encoder's, with
    `samples` draws per image.
    """
    with _scoring(model, images, seed) as (x, generator):
        post = model.posterior(x) if post is None else post
        per = max(1, ROWS // len(x))  # samples per block of decoder rows
        elbo = torch.cat(
            [
                posterior_elbo(
                    model, x, post, min(per, samples - done), generator
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
    post: Posterior,
    k: int,
    seed: int = 0,
) -> torch.Tensor:
    """The IWAE bound on log p(x) with the posteriors `post` as proposals.

    log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i), z_i ~ q, per image (N,), for
    posteriors (N, L) such as optimise_posterior's. A bound with any
    proposal is a lower bound on log p(x); a proposal closer to the
    posterior makes it tighter for the same k.
    """
    with _scoring(model, images, seed) as (x, generator):
        per, log_w = max(1, ROWS // len(x)), []
        for done in range(0, k, per):
            eps = _noise(post, min(per, k - done), generator)
            z, log_qz = model.draw(post, eps)  # (n, N, L), (n, N)
            out = model.decode_logits(z.flatten(0, 1))
            log_px_z = -likelihoods.nll(
                model.config, out, x.repeat(len(eps), 1)
            ).view(len(eps), len(x))
            log_w.append(log_px_z + model.log_prior(z) - log_qz)
    return (torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k)).cpu()
