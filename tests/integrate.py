"""A 4-pixel VAE with a 1-D latent, and its ELBO and log p(x) by quadrature.

Shared by the tests that check estimators against numerical integration.
"""

import math

import torch
import torch.nn.functional as F

import vaelib


def tiny_vae_and_images():
    """A 4-pixel VAE with a 1-D latent, in float64, and 6 grey images.

    Small enough to integrate log p(x) on a grid.
    """
    config = vaelib.VAEConfig(
        input_shape=(1, 2, 2),
        hidden_dims=(8,),
        latent_dim=1,
        batch_norm=False,
        dropout=0.0,
        device="cpu",
    )
    model = vaelib.build_model(config).double().eval()
    # sharpen the decoder so that log p(x|z) really depends on z
    with torch.no_grad():
        model.to_logits.weight.mul_(6.0)
    x = torch.rand(
        6,
        1,
        2,
        2,
        generator=torch.Generator().manual_seed(1),
        dtype=torch.float64,
    )
    return model, x


def grid(n=20_001, limit=12.0):
    z = torch.linspace(-limit, limit, n, dtype=torch.float64)
    log_dz = torch.full(
        (n,), math.log(2 * limit / (n - 1)), dtype=torch.float64
    )
    log_dz[[0, -1]] -= math.log(2.0)  # trapezoid rule
    return z, log_dz


@torch.no_grad()
def log_px_given_z_on_grid(model, x, z):
    """log p(x|z) for every image (rows) and grid point (columns).

    Computed with torch's own BCE.
    """
    logits = model.decode_logits(z[:, None])  # (G, 4)
    xs = x.reshape(len(x), 1, -1).expand(-1, len(z), -1)
    return -F.binary_cross_entropy_with_logits(
        logits.expand(len(x), -1, -1), xs, reduction="none"
    ).sum(-1)


def log_marginal(model, x):
    z, log_dz = grid()
    log_prior = torch.distributions.Normal(0.0, 1.0).log_prob(z)
    return torch.logsumexp(
        log_px_given_z_on_grid(model, x, z) + log_prior + log_dz, dim=1
    )


def elbo(model, x):
    """E_q[log p(x|z)] by integration against q's density, minus the KL.

    The KL is the closed-form one.
    """
    z, log_dz = grid()
    with torch.no_grad():
        mu, logvar = model.encode(x)
    # (N, 1) broadcasts against the grid
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    weights = torch.exp(q.log_prob(z[None, :]) + log_dz)
    expected = (weights * log_px_given_z_on_grid(model, x, z)).sum(1)
    kl = torch.distributions.kl_divergence(
        q, torch.distributions.Normal(0.0, 1.0)
    ).sum(1)
    return expected - kl
