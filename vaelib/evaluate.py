"""Evaluation: ELBO terms, IWAE bound, bits per dimension, active units.

The ELBO's terms, the importance-weighted bound on log p(x), bits per
dimension of 8-bit images, and which latent units are used.
"""

from __future__ import annotations

import math

import torch

from . import likelihoods
from .losses import LossTerms, gaussian_kl_per_dim, vae_loss
from .model import VAE

# decoder outputs scored at once by iwae_bound: larger blocks fall out of
# the CPU's caches
IWAE_ROWS = 500


def _batches(
    images: torch.Tensor, labels: torch.Tensor | None, batch_size: int, device
):
    """(images, labels or None) in slices of batch_size, moved to `device`."""
    for start in range(0, len(images), batch_size):
        y = (
            None
            if labels is None
            else labels[start : start + batch_size].to(device)
        )
        yield images[start : start + batch_size].to(device), y


@torch.no_grad()
def per_image_terms(
    model: VAE,
    images: torch.Tensor,
    beta: float = 1.0,
    batch_size: int = 2000,
    seed: int = 0,
    labels: torch.Tensor | None = None,
) -> LossTerms:
    """Loss, reconstruction and KL for every image (each (N,)), in eval mode.

    One z sample per image. The noise (and the dequantization of a density's
    pixels) is drawn from a generator seeded with `seed`, so the numbers are
    repeatable. `labels` (N,) are needed by a conditional model
    (config.num_classes > 0) and refused by others.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    parts, nll = [], likelihoods.nll_function(model.config)
    for x, y in _batches(images, labels, batch_size, device):
        x = likelihoods.prepare(model.config, model.flatten(x), generator)
        out = model(x, y, generator=generator)
        parts.append(
            vae_loss(
                out.logits,
                x,
                out.mu,
                out.logvar,
                beta,
                nll=nll,
                kl=model.kl(out),
            )
        )
    model.train(was_training)
    return LossTerms(*(torch.cat(t) for t in zip(*parts)))


def evaluate(
    model: VAE,
    images: torch.Tensor,
    beta: float = 1.0,
    batch_size: int = 2000,
    seed: int = 0,
    labels: torch.Tensor | None = None,
) -> dict[str, float]:
    """Averages over `images` in nats per image: loss, recon, kl, neg_elbo.

    neg_elbo = recon + kl.
    """
    terms = per_image_terms(model, images, beta, batch_size, seed, labels)
    return {
        "loss": terms.loss.mean().item(),
        "recon": terms.recon.mean().item(),
        "kl": terms.kl.mean().item(),
        "neg_elbo": (terms.recon + terms.kl).mean().item(),
    }


def bernoulli_entropy_floor(images: torch.Tensor) -> torch.Tensor:
    """The lowest Bernoulli cross-entropy any decoder can reach.

    The sum of pixel entropies, (N, ...) -> (N,). For a grey level x the
    Bernoulli cross-entropy -x log p - (1 - x) log(1 - p) is smallest at
    p = x, where it equals the entropy -x log x - (1 - x) log(1 - x)
    (0 for black or white pixels).
    """
    x = images.flatten(1).double()
    # entr(p) = -p log p
    return (torch.special.entr(x) + torch.special.entr(1 - x)).sum(dim=1)


@torch.no_grad()
def iwae_bound(
    model: VAE,
    images: torch.Tensor,
    k: int,
    labels: torch.Tensor | None = None,
    batch_size: int = 100,
    chunk: int | None = None,
    seed: int = 0,
    likelihood: str | None = None,
) -> torch.Tensor:
    """The importance-weighted bound with k samples from q(z|x), in nats.

    Per image, (N, ...) -> (N,):

        log p_k(x) = log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x),
        z_i ~ q(z|x) (Burda et al., 2015).

    k = 1 is a one-sample ELBO, and the bound rises towards log p(x) as k
    grows, provided p(x|z) is normalised. The Bernoulli cross-entropy on grey
    pixels is not (`vaelib.losses.bernoulli_nll`): for it the number bounds
    nothing, it is only comparable with the Bernoulli ELBO. The densities
    score dequantized pixels (drawn from the seeded generator); `likelihood`
    scores the decoder's outputs with another likelihood of the same shape
    (e.g. a Bernoulli decoder as a continuous Bernoulli). Samples are drawn
    `chunk` per image at a time (default: about IWAE_ROWS decoder rows per
    block).
    """
    if not (isinstance(k, int) and k >= 1):
        raise ValueError(
            f"k (importance samples per image) must be an integer >= 1; "
            f"got {k!r}"
        )
    config = (
        model.config
        if likelihood is None
        else model.config.replace(likelihood=likelihood)
    )
    if likelihoods.params_per_pixel(config) != likelihoods.params_per_pixel(
        model.config
    ):
        raise ValueError(
            f"A {model.config.likelihood!r} decoder cannot be scored as "
            f"{config.likelihood!r}: their decoders emit different numbers of "
            "outputs per pixel."
        )
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    bounds = []
    for x, y in _batches(images, labels, batch_size, device):
        x = likelihoods.prepare(config, model.flatten(x), generator)
        post = model.posterior(x, y)
        log_w, per = [], chunk or max(1, IWAE_ROWS // len(x))
        for done in range(0, k, per):
            n = min(per, k - done)
            # eps: (n, B, L)
            eps = torch.randn(
                (n, *post.mu.shape), generator=generator, device=device
            )
            z, log_qz = model.draw(post, eps)
            out = model.decode_logits(
                z.flatten(0, 1), None if y is None else y.repeat(n)
            )
            log_px_z = -likelihoods.nll(config, out, x.repeat(n, 1)).view(
                n, len(x)
            )
            log_pz = model.log_prior(z)
            log_w.append(log_px_z + log_pz - log_qz)
        bounds.append(torch.logsumexp(torch.cat(log_w), dim=0) - math.log(k))
    model.train(was_training)
    return torch.cat(bounds).cpu()


def log_prob_8bit(
    model: VAE,
    images: torch.Tensor,
    k: int = 1,
    labels: torch.Tensor | None = None,
    seed: int = 0,
    likelihood: str | None = None,
) -> torch.Tensor:
    """A lower bound on log P(image) of 8-bit images k / 255, in nats.

    (N, ...) -> (N,). The IWAE bound with k samples (k = 1: the ELBO).
    A density p on [0, 1] is scored on dequantized pixels (k + u) / 256, and
    P(bin) = E_u[p] / 256 >= exp(E_u[log p]) / 256, so each pixel adds
    -log 256; the discretized logistic gives P(k) itself. A Bernoulli decoder
    is scored as what its outputs define once normalised, a continuous
    Bernoulli; likelihood="bernoulli" instead gives the unnormalised number,
    which bounds nothing.
    """
    name = likelihood or model.config.likelihood
    if likelihood is None and name == "bernoulli":
        name = "continuous_bernoulli"
    if name == "bernoulli":
        # read as a density on [0, 1], so scored on dequantized pixels like one
        generator = torch.Generator(device=images.device).manual_seed(seed)
        images = likelihoods.dequantize(model.flatten(images), generator)
    bound = iwae_bound(model, images, k, labels, seed=seed, likelihood=name)
    if name != "discretized_logistic":
        bound = bound - model.config.input_dim * likelihoods.LOG_BINS
    return bound


def bits_per_dim(log_prob: torch.Tensor, dims: int) -> float:
    """-log P in nats per image (N,) -> the data set's bits per dimension.

    That is -mean / (dims ln 2).
    """
    return -log_prob.double().mean().item() / (dims * math.log(2))


@torch.no_grad()
def posterior_stats(
    model: VAE,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    batch_size: int = 2000,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior means (N, L) and per-dimension KL to the prior (L,), on CPU.

    The KL is averaged over images.
    """
    model.eval()
    device = next(model.parameters()).device
    mus, kl_sum = [], 0.0
    for x, y in _batches(images, labels, batch_size, device):
        mu, logvar = model.encode(x, y)
        mus.append(mu.cpu())
        kl_sum = kl_sum + gaussian_kl_per_dim(mu, logvar).sum(0).cpu()
    return torch.cat(mus), kl_sum / len(images)


def active_units(means: torch.Tensor, threshold: float = 0.01) -> torch.Tensor:
    """Which latent dimensions the encoder uses: (N, L) -> (L,) bool.

    Active means Var_x[E_q(z|x) z_j] > threshold (Burda et al., 2015).
    """
    if means.ndim != 2 or len(means) < 2:
        raise ValueError(
            f"active_units expects posterior means of shape (N, L) "
            f"with N >= 2; got {tuple(means.shape)}"
        )
    return means.double().var(dim=0) > threshold
