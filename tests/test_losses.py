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


def _codes(n: int, latent: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(n, latent, generator=g, dtype=torch.float64)
    logvar = torch.randn(n, latent, generator=g, dtype=torch.float64) - 1
    z = mu + (0.5 * logvar).exp() * torch.randn(
        n, latent, generator=g, dtype=torch.float64
    )
    return z, mu, logvar


def test_batch_aggregate_is_exact_when_the_batch_is_the_data_set():
    z, mu, logvar = _codes(50, 3)
    log_joint, log_marg = vaelib.losses.batch_aggregate(z, mu, logvar, 50)
    torch.testing.assert_close(
        log_joint, vaelib.aggregate.log_aggregate(z, mu, logvar)
    )
    for j in range(3):
        torch.testing.assert_close(
            log_marg[:, j],
            vaelib.aggregate.log_aggregate(
                z[:, j : j + 1], mu[:, j : j + 1], logvar[:, j : j + 1]
            ),
        )


def test_batch_aggregate_is_unbiased_over_every_possible_batch():
    from itertools import combinations

    n, b = 7, 3
    z, mu, logvar = _codes(n, 2, seed=1)
    exact = vaelib.aggregate.log_aggregate(z, mu, logvar).exp()
    for i in range(n):
        others = [j for j in range(n) if j != i]
        estimates = []
        for rest in combinations(others, b - 1):
            idx = torch.tensor([i, *rest])
            log_joint, _ = vaelib.losses.batch_aggregate(
                z[idx], mu[idx], logvar[idx], n
            )
            estimates.append(log_joint[0].exp())
        assert torch.stack(estimates).mean() == pytest.approx(
            exact[i].item(), rel=1e-9
        )
        # a single batch is off: the test could fail
        assert not torch.allclose(estimates[0], exact[i], rtol=1e-3)


def _batched_tc(z, mu, logvar, batch, g):
    """Mean batch estimate of the total correlation over one shuffled pass."""
    perm, n = torch.randperm(len(z), generator=g), len(z)
    parts = [
        vaelib.losses.total_correlation(z[i], mu[i], logvar[i], n)
        for i in perm.split(batch)
        if len(i) > 1
    ]
    return torch.cat(parts).mean().item()


def test_total_correlation_of_correlated_codes_matches_the_gaussian_one():
    # posteriors N(m_n, s^2 I) around correlated means: q(z) is close to
    # N(0, C + s^2 I), whose TC is -log(1 - r^2) / 2, r = rho / (1 + s^2)
    g = torch.Generator().manual_seed(0)
    n, rho, s = 4000, 0.8, 0.3
    a, b = torch.randn(2, n, generator=g, dtype=torch.float64)
    mu = torch.stack([a, rho * a + math.sqrt(1 - rho**2) * b], dim=1)
    logvar = torch.full_like(mu, math.log(s**2))
    z = mu + s * torch.randn(n, 2, generator=g, dtype=torch.float64)
    full = vaelib.losses.total_correlation(z, mu, logvar, n).mean().item()
    r = rho / (1 + s**2)
    assert full == pytest.approx(-0.5 * math.log(1 - r**2), abs=0.02)
    # batches estimate it with a bias that shrinks as they grow
    small, large = (_batched_tc(z, mu, logvar, b, g) for b in (128, 500))
    assert small < large < full + 0.005
    assert full - large < 0.03
    # independent coordinates: no total correlation
    both = torch.stack([a, b], dim=1)
    z0 = both + s * torch.randn(n, 2, generator=g, dtype=torch.float64)
    tc0 = vaelib.losses.total_correlation(z0, both, logvar, n).mean()
    assert abs(tc0.item()) < 0.02
