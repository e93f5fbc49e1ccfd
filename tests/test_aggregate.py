"""The aggregate posterior against torch.distributions and integration."""

import math

import pytest
import torch
from torch import distributions as D

from vaelib import aggregate


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def mixture(mu, logvar):
    """The same aggregate posterior, built by torch.distributions."""
    comps = D.Independent(D.Normal(mu, (0.5 * logvar).exp()), 1)
    weights = D.Categorical(torch.ones(len(mu), dtype=mu.dtype))
    return D.MixtureSameFamily(weights, comps)


def test_log_aggregate_matches_torch_mixture():
    g = gen()
    mu = torch.randn(300, 4, generator=g, dtype=torch.float64)
    logvar = torch.randn(300, 4, generator=g, dtype=torch.float64) - 1
    z = 2 * torch.randn(3000, 4, generator=g, dtype=torch.float64)
    expected = mixture(mu, logvar).log_prob(z)
    got = aggregate.log_aggregate(z, mu, logvar)
    assert torch.allclose(got, expected, rtol=0, atol=1e-9)


def surgery_on_grid(mu, var):
    """I_q and KL(q(z) || p(z)) of a 1-D mixture by integration on a grid."""
    z = torch.linspace(-12, 12, 200_001, dtype=torch.float64)
    dz = z[1] - z[0]
    comps = D.Normal(mu[:, None], var.sqrt()[:, None]).log_prob(z)  # (N, G)
    log_q = torch.logsumexp(comps, 0) - math.log(len(mu))
    info = (comps.exp() * (comps - log_q)).sum(1).mean() * dz
    log_p = D.Normal(0.0, 1.0).log_prob(z)
    marginal = (log_q.exp() * (log_q - log_p)).sum() * dz
    return info.item(), marginal.item()


def test_elbo_surgery_matches_integration():
    g = gen(1)
    mu = torch.randn(8, generator=g, dtype=torch.float64) * 1.5
    var = torch.rand(8, generator=g, dtype=torch.float64) * 0.5 + 0.05
    info, marginal = surgery_on_grid(mu, var)
    out = aggregate.elbo_surgery(
        mu[:, None], var.log()[:, None], gen(2), samples=20_000
    )
    # Monte Carlo: within 4 standard errors (fails at about 1 in 15,000)
    assert abs(out["mutual_info"] - info) < 4 * out["mutual_info_se"]
    assert abs(out["marginal_kl"] - marginal) < 4 * out["marginal_kl_se"]
    # the standard errors are small enough for this to mean something
    assert out["mutual_info_se"] < 0.01 and out["marginal_kl_se"] < 0.01
    # the rate is the exact KL, and the two parts add up to it
    rate = D.kl_divergence(D.Normal(mu, var.sqrt()), D.Normal(0.0, 1.0)).mean()
    assert out["rate"] == pytest.approx(rate.item(), abs=1e-12)
    assert info + marginal == pytest.approx(rate.item(), abs=1e-6)
    assert out["log_n"] == pytest.approx(math.log(8))


def test_surgery_extremes():
    # identical posteriors: the code says nothing about which image
    same = aggregate.elbo_surgery(
        torch.full((50, 3), 0.7), torch.full((50, 3), -1.0), gen()
    )
    assert same["mutual_info"] == pytest.approx(0.0, abs=1e-9)
    assert same["marginal_kl"] == pytest.approx(same["rate"], abs=0.1)
    # narrow posteriors far apart: the code names the image, log N nats
    apart = aggregate.elbo_surgery(
        torch.tensor([[-30.0], [-10.0], [10.0], [30.0]]),
        torch.full((4, 1), math.log(0.01)),
        gen(),
        samples=10,
    )
    assert apart["mutual_info"] == pytest.approx(math.log(4), abs=1e-9)


def test_no_holes_when_codes_fill_the_prior():
    # every posterior is the prior itself, so q(z) = p(z) exactly and the
    # share is the level up to sampling: sd = sqrt(0.01 * 0.99 / 10,000)
    n = 8000
    share = aggregate.prior_hole_fraction(
        torch.zeros(n, 3), torch.zeros(n, 3), gen(), prior_draws=n, level=0.01
    )
    assert abs(share - 0.01) < 4 * math.sqrt(0.01 * 0.99 / (n // 2))


def test_hole_between_two_clusters():
    # codes at -2 and +2 (sd 0.5) leave a hole around 0 that the prior
    # covers; the exact share comes from the true densities
    n, sd = 10_000, 0.5
    mu = torch.tensor([-2.0, 2.0]).repeat(n // 2)[:, None]
    logvar = torch.full((n, 1), 2 * math.log(sd))
    true_q = mixture(torch.tensor([[-2.0], [2.0]]), logvar[:2])
    codes = true_q.sample((1_000_000,))
    threshold = torch.quantile(true_q.log_prob(codes)[:500_000], 0.01)
    prior = torch.randn(1_000_000, 1, generator=gen(5))
    exact = (true_q.log_prob(prior) < threshold).float().mean().item()
    share = aggregate.prior_hole_fraction(
        mu, logvar, gen(), prior_draws=10_000
    )
    assert exact > 0.2  # the hole is real: far above the 1% level
    # the share moves with the threshold, itself the 1% quantile of 5,000
    # codes: over 8 seeds at 2,000 codes it spread by sd 0.03, at 20,000 by
    # 0.01
    assert share == pytest.approx(exact, abs=0.05)


def test_bad_input_is_explained():
    with pytest.raises(ValueError, match="shape"):
        aggregate.log_aggregate(
            torch.zeros(5, 2), torch.zeros(5, 2), torch.zeros(5, 3)
        )
    with pytest.raises(ValueError, match="level"):
        aggregate.prior_hole_fraction(
            torch.zeros(10, 2), torch.zeros(10, 2), gen(), level=1.5
        )


def test_surgery_against_a_given_prior_matches_integration():
    # p(z) = N(1, 2^2) passed as a function: the parts against integration
    g = gen(3)
    mu = torch.randn(8, generator=g, dtype=torch.float64)
    var = torch.rand(8, generator=g, dtype=torch.float64) * 0.5 + 0.05
    prior = D.Normal(1.0, 2.0)
    zs = torch.linspace(-15, 15, 20_001, dtype=torch.float64)
    q_n = D.Normal(mu[:, None], var.sqrt()[:, None]).log_prob(zs).exp()
    q = q_n.mean(0)
    dz = zs[1] - zs[0]
    marginal = (q * (q.log() - prior.log_prob(zs))).sum() * dz
    rate = D.kl_divergence(D.Normal(mu, var.sqrt()), prior).mean()
    out = aggregate.elbo_surgery(
        mu[:, None],
        var.log()[:, None],
        gen(4),
        samples=20_000,
        log_prior=lambda z: prior.log_prob(z).sum(1),
    )
    assert abs(out["marginal_kl"] - marginal) < 4 * out["marginal_kl_se"]
    # the rate is now a Monte Carlo sum: within 4 of its parts' errors
    se = out["mutual_info_se"] + out["marginal_kl_se"]
    assert abs(out["rate"] - rate) < 4 * se
    assert abs(out["rate"] - rate) > 1e-6  # not the closed form


def test_a_prior_that_matches_the_codes_has_no_holes():
    # codes at -2 and +2 leave a hole for N(0, 1); drawn from the codes'
    # own mixture, the prior lands in holes only at the level's rate
    n, sd = 4000, 0.5
    mu = torch.tensor([-2.0, 2.0]).repeat(n // 2)[:, None]
    logvar = torch.full((n, 1), 2 * math.log(sd))
    torch.manual_seed(0)
    codes = mixture(torch.tensor([[-2.0], [2.0]]), logvar[:2]).sample((n,))
    share = aggregate.prior_hole_fraction(
        mu, logvar, gen(), level=0.01, prior_codes=codes
    )
    assert abs(share - 0.01) < 4 * math.sqrt(0.01 * 0.99 / (n // 2))
    standard = aggregate.prior_hole_fraction(mu, logvar, gen(), level=0.01)
    assert standard > 0.2


def test_kl_decomposition_matches_integration_in_two_dimensions():
    # four posteriors on a diagonal: dependent dimensions, TC > 0
    mu = torch.tensor([[-2.0, -2.0], [-1.0, -0.5], [1.0, 0.5], [2.0, 2.0]])
    logvar = torch.full((4, 2), math.log(0.3))
    grid = torch.linspace(-8, 8, 801, dtype=torch.float64)
    dz = (grid[1] - grid[0]).item()
    z = torch.cartesian_prod(grid, grid)
    q = aggregate.log_aggregate(z, mu, logvar).exp()
    q1, q2 = (
        aggregate.log_aggregate(
            grid[:, None], mu[:, [j]], logvar[:, [j]]
        ).exp()
        for j in range(2)
    )
    product = (q1[:, None] * q2[None, :]).reshape(-1)
    tc = (q * (q.log() - product.log())).sum() * dz**2
    marginal = (q * (q.log() - aggregate.log_normal(z))).sum() * dz**2
    out = aggregate.kl_decomposition(
        mu.repeat(1000, 1), logvar.repeat(1000, 1), gen(6)
    )
    assert tc > 0.3  # the dimensions really are dependent
    assert out["total_correlation_se"] < 0.05 * tc  # the check has teeth
    tol = 4 * out["total_correlation_se"]
    assert abs(out["total_correlation"] - tc) < tol
    dim_kl = marginal - tc
    assert abs(out["dimension_kl"] - dim_kl) < 4 * out["dimension_kl_se"]
