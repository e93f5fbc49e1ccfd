"""Evaluation: the ELBO's terms, per image and averaged, on a whole split."""

from __future__ import annotations

import torch

from .losses import LossTerms, vae_loss
from .model import VAE


@torch.no_grad()
def per_image_terms(model: VAE, images: torch.Tensor, beta: float = 1.0, batch_size: int = 2000,
                    seed: int = 0) -> LossTerms:
    """Loss, reconstruction and KL for every image (each (N,)), in eval mode, one z sample each.

    The noise is drawn from a generator seeded with `seed`, so the numbers are repeatable.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    parts = []
    for start in range(0, len(images), batch_size):
        x = images[start:start + batch_size].to(device)
        out = model(x, generator=generator)
        parts.append(vae_loss(out.logits, model.flatten(x), out.mu, out.logvar, beta))
    model.train(was_training)
    return LossTerms(*(torch.cat(t) for t in zip(*parts)))


def evaluate(model: VAE, images: torch.Tensor, beta: float = 1.0, batch_size: int = 2000,
             seed: int = 0) -> dict[str, float]:
    """Averages over `images` in nats per image: loss, recon, kl and neg_elbo (= recon + kl)."""
    terms = per_image_terms(model, images, beta, batch_size, seed)
    return {"loss": terms.loss.mean().item(), "recon": terms.recon.mean().item(),
            "kl": terms.kl.mean().item(), "neg_elbo": (terms.recon + terms.kl).mean().item()}


def bernoulli_entropy_floor(images: torch.Tensor) -> torch.Tensor:
    """The lowest reconstruction cost any decoder can reach: sum of pixel entropies, (N, ...) -> (N,).

    For a grey level x the Bernoulli cross-entropy -x log p - (1 - x) log(1 - p) is smallest at
    p = x, where it equals the entropy -x log x - (1 - x) log(1 - x) (0 for black or white pixels).
    """
    x = images.flatten(1).double()
    return (torch.special.entr(x) + torch.special.entr(1 - x)).sum(dim=1)  # entr(p) = -p log p
