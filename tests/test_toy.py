"""The ELBO chapter's identities, on a model where everything is known."""

import math

import torch

from vaelib.toy import (
    LinearGaussian,
    log_marginal_numerical,
    reparam_gradients,
    score_gradients,
)

MODEL = LinearGaussian(w=2.0, b=0.5, s=0.8)
X = torch.tensor([-3.0, -0.4, 0.5, 1.7, 4.0], dtype=torch.float64)


def test_closed_form_marginal_matches_numerical_integration():
    torch.testing.assert_close(
        log_marginal_numerical(MODEL.log_joint, X),
        MODEL.log_marginal(X),
        rtol=0,
        atol=1e-10,
    )


def test_log_marginal_is_elbo_plus_kl_to_the_posterior_for_any_q():
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(len(X), generator=g, dtype=torch.float64) * 2
    logvar = torch.randn(len(X), generator=g, dtype=torch.float64)
    identity = MODEL.elbo(X, mu, logvar) + MODEL.kl_to_posterior(X, mu, logvar)
    torch.testing.assert_close(
        identity, MODEL.log_marginal(X), rtol=0, atol=1e-12
    )
    # a strict bound away from the posterior
    assert torch.all(MODEL.elbo(X, mu, logvar) < MODEL.log_marginal(X))


def test_elbo_is_tight_at_the_exact_posterior():
    mean, var = MODEL.posterior(X)
    torch.testing.assert_close(
        MODEL.elbo(X, mean, var.log()),
        MODEL.log_marginal(X),
        rtol=0,
        atol=1e-12,
    )
    torch.testing.assert_close(
        MODEL.kl_to_posterior(X, mean, var.log()),
        torch.zeros_like(X),
        rtol=0,
        atol=1e-12,
    )


def test_closed_form_elbo_matches_monte_carlo():
    g = torch.Generator().manual_seed(1)
    x, mu, logvar, n = (
        torch.tensor(1.7, dtype=torch.float64),
        0.3,
        -0.5,
        400_000,
    )
    z = mu + math.exp(0.5 * logvar) * torch.randn(
        n, generator=g, dtype=torch.float64
    )
    log_q = -0.5 * (
        math.log(2 * math.pi) + logvar + (z - mu) ** 2 / math.exp(logvar)
    )
    samples = MODEL.log_joint(x, z) - log_q
    closed = MODEL.elbo(
        x,
        torch.tensor(mu, dtype=torch.float64),
        torch.tensor(logvar, dtype=torch.float64),
    )
    assert abs(samples.mean() - closed) < 4 * samples.std() / math.sqrt(n)


def test_both_gradient_estimators_are_unbiased_and_reparam_has_lower_variance():  # noqa: E501
    def f(z):
        return (z - 2.0) ** 2  # E_q f = (mu - 2)^2 + var

    mu, logvar, n = 0.5, math.log(0.3), 200_000
    exact = torch.tensor(
        [2 * (mu - 2.0), math.exp(logvar)], dtype=torch.float64
    )
    for estimator in (reparam_gradients, score_gradients):
        g = estimator(f, mu, logvar, n, torch.Generator().manual_seed(2))
        assert torch.all(
            (g.mean(0) - exact).abs() < 4 * g.std(0) / math.sqrt(n)
        ), estimator.__name__
    reparam = reparam_gradients(
        f, mu, logvar, n, torch.Generator().manual_seed(3)
    ).var(0)
    score = score_gradients(
        f, mu, logvar, n, torch.Generator().manual_seed(3)
    ).var(0)
    assert torch.all(reparam * 10 < score), (reparam, score)
