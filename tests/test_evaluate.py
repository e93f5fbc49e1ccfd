"""The importance-weighted bound and active units.

Checked against numerical integration and NumPy.
"""

import math

import numpy as np
import pytest
import torch

import vaelib
from integrate import elbo, log_marginal
from vaelib.evaluate import active_units, iwae_bound, posterior_stats


def test_iwae_with_many_samples_reaches_the_integrated_log_marginal(tiny_vae):
    model, x = tiny_vae
    truth = log_marginal(model, x)
    bound = iwae_bound(model, x, k=20_000, chunk=5000)
    assert bound.dtype == torch.float64 and bound.shape == (len(x),)
    assert torch.allclose(bound, truth, atol=0.01), (bound, truth)


def test_iwae_bound_rises_with_k_from_the_elbo_towards_log_px(tiny_vae):
    model, x = tiny_vae
    truth, lower = log_marginal(model, x), elbo(model, x)
    # the gap must be visible for the test to mean anything
    assert torch.all(lower < truth - 0.05)
    repeats = 400
    xs = x.repeat(repeats, 1, 1, 1)
    means, ses = [], []
    for k in (1, 10, 100):
        b = iwae_bound(model, xs, k=k, seed=k).view(repeats, len(x))
        means.append(b.mean(0))
        ses.append(b.std(0) / math.sqrt(repeats))
    # k = 1 is an unbiased estimate of the ELBO
    assert torch.all((means[0] - lower).abs() < 4 * ses[0]), (
        means[0],
        lower,
        ses[0],
    )
    # each larger k is higher in expectation, and never above log p(x)
    for small_k, large_k, se in zip(means, means[1:], ses):
        assert torch.all(large_k > small_k - 4 * se)
    assert torch.all(means[-1] < truth + 4 * ses[-1])
    assert (means[2] - means[0]).mean() > 0.5 * (truth - lower).mean()


def test_iwae_of_a_trained_mnist_model_is_above_its_elbo(mnist):
    config = vaelib.VAEConfig.recommended(latent_dim=5, epochs=1, device="cpu")
    model = vaelib.build_model(config)
    vaelib.fit(
        model,
        type(mnist)(mnist.val, mnist.val, mnist.test, "t"),
        config,
        progress=False,
    )
    x = mnist.test.images[:200]
    terms = vaelib.per_image_terms(model, x)
    b1, b50 = iwae_bound(model, x, k=1), iwae_bound(model, x, k=50)
    # both estimate the ELBO per image, from independent samples
    diff = b1 + terms.recon + terms.kl
    assert diff.mean().abs() < 4 * diff.std() / len(x) ** 0.5
    assert (b50 - b1).mean() > 0.5


def test_iwae_rejects_a_bad_k(tiny_vae):
    model, x = tiny_vae
    with pytest.raises(ValueError, match="k .* integer >= 1"):
        iwae_bound(model, x, k=0)


def test_active_units_match_numpy_variances():
    g = torch.Generator().manual_seed(0)
    means = torch.randn(500, 4, generator=g) * torch.tensor(
        [1.0, 0.05, 0.3, 0.0]
    )
    expected = np.var(means.numpy().astype(np.float64), axis=0, ddof=1) > 0.01
    assert (
        active_units(means).tolist()
        == expected.tolist()
        == [True, False, True, False]
    )
    with pytest.raises(ValueError, match="shape"):
        active_units(torch.zeros(1, 3))


def test_posterior_stats_agree_with_torch_distributions():
    model = vaelib.build_model(
        vaelib.VAEConfig(latent_dim=3, device="cpu")
    ).eval()
    x = torch.rand(50, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    means, kl_per_dim = posterior_stats(model, x, batch_size=16)
    with torch.no_grad():
        mu, logvar = model.encode(x)
    q = torch.distributions.Normal(mu, torch.exp(0.5 * logvar))
    reference = torch.distributions.kl_divergence(
        q, torch.distributions.Normal(0.0, 1.0)
    ).mean(0)
    assert torch.allclose(means, mu) and torch.allclose(
        kl_per_dim, reference, atol=1e-5
    )


def test_iwae_in_small_chunks_reaches_the_integrated_log_marginal_too(
    tiny_vae,
):
    model, x = tiny_vae
    # default blocks
    assert torch.allclose(
        iwae_bound(model, x, k=20_000), log_marginal(model, x), atol=0.01
    )
