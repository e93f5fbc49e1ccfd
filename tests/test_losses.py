"""The objective's maths, against references sharing no code with vaelib."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Bernoulli, Independent, Normal, kl_divergence

import vaelib
from vaelib import bernoulli_nll, gaussian_kl, vae_loss


def test_kl_matches_torch_distributions():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(64, 5, generator=g, dtype=torch.float64) * 2
    logvar = torch.randn(64, 5, generator=g, dtype=torch.float64)
    q = Independent(Normal(mu, (0.5 * logvar).exp()), 1)
    p = Independent(Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
    torch.testing.assert_close(
        gaussian_kl(mu, logvar), kl_divergence(q, p), rtol=1e-12, atol=1e-12
    )


def test_kl_matches_monte_carlo_within_standard_errors():
    g = torch.Generator().manual_seed(1)
    mu = torch.tensor(
        [[0.0, 0.0], [1.5, -0.5], [0.3, 2.0]], dtype=torch.float64
    )
    logvar = torch.tensor(
        [[0.0, 0.0], [-1.0, 0.7], [-2.5, 0.2]], dtype=torch.float64
    )
    n = 200_000
    std = (0.5 * logvar).exp()
    # (n, B, L)
    z = mu + std * torch.randn(n, *mu.shape, generator=g, dtype=torch.float64)
    log_q = Normal(mu, std).log_prob(z).sum(-1)
    log_p = Normal(0.0, 1.0).log_prob(z).sum(-1)
    samples = log_q - log_p  # (n, B): one-sample KL estimates
    estimate, stderr = samples.mean(0), samples.std(0) / math.sqrt(n)
    closed = gaussian_kl(mu, logvar)
    assert closed[0] == 0  # q = p exactly
    assert torch.all((estimate - closed).abs() <= 4 * stderr + 1e-9), (
        estimate,
        closed,
        stderr,
    )


def test_bernoulli_nll_is_a_per_image_sum_of_pixel_cross_entropies():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(4, 784, generator=g, dtype=torch.float64) * 3
    # grey levels, not just 0/1
    x = torch.rand(4, 784, generator=g, dtype=torch.float64)
    p = torch.sigmoid(logits)
    reference = -(x * p.log() + (1 - x) * (1 - p).log()).sum(1)
    torch.testing.assert_close(bernoulli_nll(logits, x), reference)
    binary = (x > 0.5).double()
    torch.testing.assert_close(
        bernoulli_nll(logits, binary),
        -Independent(Bernoulli(logits=logits), 1).log_prob(binary),
    )
    # A logit of 0 costs log 2 per pixel whatever x is: 784 log 2 per image (a
    # sum, not a mean).
    torch.testing.assert_close(
        bernoulli_nll(torch.zeros(2, 784), torch.rand(2, 784)),
        torch.full((2,), 784 * math.log(2)),
    )


def test_logits_form_stays_exact_where_sigmoid_then_bce_saturates():
    logits, x = torch.tensor([[200.0, -200.0]]), torch.tensor([[0.0, 1.0]])
    assert bernoulli_nll(logits, x).item() == 400.0  # softplus(200) twice
    clamped = F.binary_cross_entropy(
        torch.sigmoid(logits), x, reduction="sum"
    ).item()
    # sigmoid + BCE clamps log(0) to -100 and under-reports the loss
    assert clamped == 200.0


def test_vae_loss_is_per_image_and_beta_weights_only_the_kl():
    g = torch.Generator().manual_seed(3)
    logits, x = (
        torch.randn(3, 784, generator=g),
        torch.rand(3, 784, generator=g),
    )
    mu, logvar = torch.randn(3, 2, generator=g), torch.randn(3, 2, generator=g)
    batch = vae_loss(logits, x, mu, logvar, beta=4.0)
    for i in range(3):
        one = vae_loss(
            logits[i : i + 1],
            x[i : i + 1],
            mu[i : i + 1],
            logvar[i : i + 1],
            beta=4.0,
        )
        torch.testing.assert_close(one.loss[0], batch.loss[i])
    torch.testing.assert_close(batch.loss, batch.recon + 4.0 * batch.kl)
    assert batch.loss.shape == (3,)


def test_free_bits_charge_a_floor_per_dimension_and_stop_its_gradient():
    g = torch.Generator().manual_seed(0)
    mu = (
        torch.randn(32, 4, generator=g, dtype=torch.float64)
        * torch.tensor([2.0, 0.1, 1.0, 0.01], dtype=torch.float64)
    ).requires_grad_()
    logvar = torch.zeros(32, 4, dtype=torch.float64, requires_grad=True)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    # (4,)
    kl_dims = torch.distributions.kl_divergence(
        q, torch.distributions.Normal(0.0, 1.0)
    ).mean(0)
    lam = 0.2
    penalty = vaelib.losses.free_bits_kl(mu, logvar, lam)
    assert penalty.shape == (32,)
    assert penalty.mean().item() == pytest.approx(
        torch.clamp(kl_dims, min=lam).sum().item()
    )
    penalty.mean().backward()
    below = (kl_dims < lam).tolist()
    # the test needs dimensions on both sides
    assert below == [False, True, False, True]
    for j, is_below in enumerate(below):
        assert (mu.grad[:, j].abs().max() == 0) == is_below
    terms = vaelib.vae_loss(
        torch.zeros(32, 784),
        torch.rand(32, 784),
        mu,
        logvar,
        beta=1.0,
        free_bits=lam,
    )
    # the reported KL stays the true KL
    assert torch.allclose(terms.kl, vaelib.gaussian_kl(mu, logvar))
