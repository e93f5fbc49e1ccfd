"""Learned priors and Monte Carlo KLs, against torch.distributions."""

import math

import pytest
import torch
from torch.distributions import (
    Categorical,
    Independent,
    MixtureSameFamily,
    Normal,
    kl_divergence,
)

import vaelib
from vaelib.priors import log_mixture, sample_mixture


def _mixture(k: int = 4, latent: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(k, latent, generator=g, dtype=torch.float64) * 2
    logvars = torch.randn(k, latent, generator=g, dtype=torch.float64)
    log_w = torch.randn(k, generator=g, dtype=torch.float64).log_softmax(0)
    return means, logvars, log_w


def _reference(means, logvars, log_w):
    return MixtureSameFamily(
        Categorical(logits=log_w),
        Independent(Normal(means, (0.5 * logvars).exp()), 1),
    )


def test_log_mixture_matches_torch_distributions():
    means, logvars, log_w = _mixture()
    z = torch.randn(7, 5, 3, dtype=torch.float64) * 3
    torch.testing.assert_close(
        log_mixture(z, means, logvars, log_w),
        _reference(means, logvars, log_w).log_prob(z),
    )


def test_mixture_draws_have_the_mixture_mean_and_variance():
    means, logvars, log_w = _mixture(seed=1)
    n = 200_000
    z = sample_mixture(
        n, means, logvars, log_w, torch.Generator().manual_seed(2)
    )
    ref = _reference(means, logvars, log_w)
    # 5 standard errors of the sample mean, per dimension
    tol = 5 * (ref.variance / n).sqrt()
    assert ((z.mean(0) - ref.mean).abs() < tol).all()
    assert torch.allclose(z.var(0), ref.variance, rtol=0.03)


def _model(**changes) -> vaelib.VAE:
    config = vaelib.VAEConfig(
        hidden_dims=(16,),
        latent_dim=3,
        batch_norm=False,
        dropout=0.0,
        device="cpu",
        **changes,
    )
    return vaelib.build_model(config).double().eval()


def test_a_vamp_prior_is_the_encoders_mixture_at_its_pseudo_inputs():
    model = _model(prior="vamp", prior_components=5)
    u = model.learned_prior.pseudo_inputs()
    assert u.shape == (5, 784) and 0 < u.min() and u.max() < 1
    mu, logvar = model.encode(u)
    z = torch.randn(11, 3, dtype=torch.float64)
    expected = _reference(mu, logvar, torch.full((5,), -math.log(5)))
    torch.testing.assert_close(model.log_prior(z), expected.log_prob(z))


def test_the_monte_carlo_kl_is_unbiased_against_the_closed_form():
    # a one-component mixture prior is a Gaussian: the KL has a closed form
    model = _model(prior="mog", prior_components=1)
    x = torch.rand(3, 784, dtype=torch.float64)
    torch.manual_seed(0)
    # 20,000 draws per image, 2,000 copies of the images per forward pass
    draws = torch.cat(
        [model.kl(model(x.repeat(2_000, 1))).view(2_000, 3) for _ in range(10)]
    )
    m, lv = (t[0] for t in model.prior_mixture()[:2])
    mu, logvar = model.encode(x)
    exact = kl_divergence(
        Independent(Normal(mu, (0.5 * logvar).exp()), 1),
        Independent(Normal(m, (0.5 * lv).exp()), 1),
    )
    se = draws.std(0) / math.sqrt(len(draws))
    assert ((draws.mean(0) - exact).abs() < 4 * se).all()
    assert (se < 0.05 * exact).all()  # the check has teeth


def test_prior_samples_come_from_the_learned_prior():
    model = _model(prior="mog", prior_components=2)
    with torch.no_grad():
        model.learned_prior.means.copy_(
            torch.tensor([[8.0, 8, 8], [-8, -8, -8]])
        )
        model.learned_prior.logits.copy_(torch.tensor([10.0, -10.0]))
    z = model.prior_sample(500, torch.Generator().manual_seed(0))
    assert z.shape == (500, 3)
    assert (z.mean(0) - 8).abs().max() < 0.3


def test_standard_prior_draws_are_unchanged_by_the_prior_option():
    g1, g2 = (torch.Generator().manual_seed(5) for _ in range(2))
    z = _model().prior_sample(6, g1)
    assert torch.equal(z, torch.randn(6, 3, generator=g2))


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(prior="vamp"), "prior_components must be"),
        (dict(prior_components=3), "prior_components must be"),
        (dict(prior="gamma"), "prior must be one of"),
        (dict(prior="vamp", prior_components=3), "batch_norm=False"),
        (dict(flow_steps=-1), "flow_steps must be"),
        (dict(flow_steps=2, free_bits=0.5), "free_bits needs"),
        (dict(flow_steps=2, tc_penalty=1.0), "needs flow_steps=0"),
        (dict(tc_penalty=-1), "tc_penalty must be"),
        (
            dict(
                prior="vamp",
                prior_components=3,
                batch_norm=False,
                num_classes=10,
            ),
            "conditional VAE",
        ),
    ],
)
def test_new_options_refuse_bad_values_clearly(changes, message):
    with pytest.raises(ValueError, match=message):
        vaelib.VAEConfig(**changes)
