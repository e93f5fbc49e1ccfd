"""Every decoder likelihood against a reference sharing no code with vaelib.

The references: torch.distributions, numerical integration, brute-force sums
over all 256 pixel values.
"""

import math

import numpy as np
import pytest
import torch
from torch.distributions import ContinuousBernoulli, Normal

import vaelib
from vaelib import likelihoods
from vaelib.evaluate import bits_per_dim, iwae_bound, log_prob_8bit
from vaelib.losses import (
    continuous_bernoulli_nll,
    discretized_logistic_log_probs,
    discretized_logistic_nll,
    gaussian_nll,
    log_cb_normaliser,
)

F64 = torch.float64


def logistic_cdf(t):
    # 1 for t = inf, 0 for t = -inf
    return 1 / (1 + math.exp(-t)) if t > -700 else 0.0


def simpson(f, lo, hi, n=2000):
    """Composite Simpson rule of the function f on [lo, hi].

    It uses n intervals; n must be even.
    """
    h = (hi - lo) / n
    total = (
        f(lo)
        + f(hi)
        + sum((4 if i % 2 else 2) * f(lo + i * h) for i in range(1, n))
    )
    return total * h / 3


def test_continuous_bernoulli_matches_torch_distributions_across_lambda():
    logits = torch.cat(
        [
            torch.linspace(-15, 15, 121, dtype=F64),
            torch.tensor([0.0, 1e-6, -3e-4, 2e-3], dtype=F64),
        ]
    )
    x = torch.rand(
        len(logits), generator=torch.Generator().manual_seed(0), dtype=F64
    )
    reference = ContinuousBernoulli(logits=logits).log_prob(x)
    ours = -continuous_bernoulli_nll(logits[:, None], x[:, None])
    torch.testing.assert_close(ours, reference, rtol=0, atol=1e-9)


def test_continuous_bernoulli_normaliser_is_one_over_the_integral_of_the_bernoulli_on_0_1():  # noqa: E501
    for logit in (-30.0, -12.0, -3.0, -0.4, 0.0, 5e-4, 2.0, 9.0, 25.0):
        log_lam, log_1m_lam = (
            -math.log1p(math.exp(-logit)),
            -math.log1p(math.exp(logit)),
        )
        integral = simpson(
            lambda x: math.exp(x * log_lam + (1 - x) * log_1m_lam),
            0.0,
            1.0,
            n=20_000,
        )
        log_c = log_cb_normaliser(torch.tensor(logit, dtype=F64)).item()
        assert abs(log_c + math.log(integral)) < 1e-9, (
            logit,
            log_c,
            -math.log(integral),
        )
        # the Bernoulli "density" integrates to at most one half
        # (at lambda = 1/2)
        assert integral <= 0.5 + 1e-12


def test_continuous_bernoulli_normaliser_is_smooth_through_one_half_in_float32():  # noqa: E501
    logits = torch.tensor(
        [-1e-2, -1e-3, -5e-4, 0.0, 5e-4, 1e-3, 1e-2], requires_grad=True
    )
    values = log_cb_normaliser(logits)
    values.sum().backward()
    # the Taylor series, exact to l^4
    expected = math.log(2) + logits.detach().double() ** 2 / 12
    torch.testing.assert_close(values.double(), expected, rtol=0, atol=1e-6)
    assert torch.isfinite(logits.grad).all()
    torch.testing.assert_close(
        logits.grad.double(), logits.detach().double() / 6, rtol=0, atol=1e-4
    )


@pytest.mark.parametrize(
    "logit", [-500.0, -40.0, -3.0, -0.004, 0.0, 2e-5, 0.5, 7.0, 300.0]
)
def test_continuous_bernoulli_mean_and_inverse_cdf_match_integration_at_any_lambda(  # noqa: E501
    logit,
):
    logits = torch.tensor([[logit]], dtype=F64)
    # the density from our normaliser, integrated on a grid fine enough for a
    # rate of 500
    xs = torch.linspace(0, 1, 400_001, dtype=F64)[:, None]
    density = (-continuous_bernoulli_nll(logits.expand(len(xs), 1), xs)).exp()[
        :, None
    ]
    cdf = torch.cat(
        [
            torch.zeros(1, 1, dtype=F64),
            torch.cumulative_trapezoid(density, xs, dim=0),
        ]
    )
    mean = torch.trapezoid(xs * density, xs, dim=0)
    torch.testing.assert_close(
        likelihoods.continuous_bernoulli_mean(logits)[0],
        mean,
        rtol=1e-6,
        atol=1e-8,
    )
    u = torch.tensor([[0.01, 0.3, 0.5, 0.9, 0.999]], dtype=F64)
    x = likelihoods.continuous_bernoulli_icdf(logits.expand_as(u), u)
    assert ((x >= 0) & (x <= 1)).all()
    # the integrated CDF at the draws
    at_x = np.interp(x[0].numpy(), xs[:, 0].numpy(), cdf[:, 0].numpy())
    np.testing.assert_allclose(at_x, u[0].numpy(), rtol=0, atol=1e-5)
    # where torch.distributions neither clamps lambda nor uses its rough
    # Taylor form
    if 0.01 < abs(logit) < 15:
        reference = ContinuousBernoulli(logits=logits.expand_as(u))
        torch.testing.assert_close(x, reference.icdf(u), rtol=0, atol=1e-6)
        torch.testing.assert_close(
            likelihoods.continuous_bernoulli_mean(logits),
            reference.mean[:, :1],
            rtol=0,
            atol=1e-6,
        )


def test_gaussian_nll_matches_torch_normal_for_fixed_and_per_pixel_sigma():
    g = torch.Generator().manual_seed(1)
    mean, x = (
        torch.rand(3, 50, generator=g, dtype=F64),
        torch.rand(3, 50, generator=g, dtype=F64),
    )
    sigma = 0.01 + torch.rand(3, 50, generator=g, dtype=F64)
    torch.testing.assert_close(
        gaussian_nll(mean, 0.1, x), -Normal(mean, 0.1).log_prob(x).sum(1)
    )
    torch.testing.assert_close(
        gaussian_nll(mean, sigma, x), -Normal(mean, sigma).log_prob(x).sum(1)
    )


@pytest.mark.parametrize(
    "loc,scale",
    [(0.5, 0.05), (-0.2, 0.01), (1.1, 0.2), (0.3, 0.002), (0.0, 3.0)],
)
def test_discretized_logistic_bins_sum_to_one_and_match_integration_of_the_density(  # noqa: E501
    loc, scale
):
    k = torch.arange(256, dtype=F64)
    log_p = discretized_logistic_log_probs(
        torch.tensor(loc, dtype=F64), torch.tensor(scale, dtype=F64), k
    )
    assert abs(log_p.exp().sum().item() - 1) < 1e-6

    def density(x):
        t = (x - loc) / scale
        return math.exp(-abs(t)) / (scale * (1 + math.exp(-abs(t))) ** 2)

    tail = 60 * scale  # the density is below e^-60 of its peak beyond this
    # edge bins integrate the whole tail
    for j in (0, 1, 2, 100, 128, 254, 255):
        lo = loc - tail if j == 0 else (j - 0.5) / 255
        hi = loc + tail if j == 255 else (j + 0.5) / 255
        lo, hi = (lo, max(hi, lo)) if j != 255 else (min(lo, hi), hi)
        reference = simpson(density, lo, hi, n=4000) if hi > lo else 0.0
        assert abs(log_p[j].exp().item() - reference) < 1e-7, (
            j,
            log_p[j].exp().item(),
            reference,
        )


def test_discretized_logistic_nll_is_the_sum_of_per_pixel_bin_log_probabilities():  # noqa: E501
    g = torch.Generator().manual_seed(2)
    loc, scale = (
        torch.rand(2, 30, generator=g, dtype=F64),
        0.01 + 0.1 * torch.rand(2, 30, generator=g, dtype=F64),
    )
    k = torch.randint(0, 256, (2, 30), generator=g).to(F64)
    k[0, :3] = torch.tensor([0.0, 255.0, 1.0])
    brute = torch.zeros(2, dtype=F64)
    for i in range(2):
        for d in range(30):
            m, s, j = loc[i, d].item(), scale[i, d].item(), k[i, d].item()
            a = math.inf if j == 255 else ((j + 0.5) / 255 - m) / s
            b = -math.inf if j == 0 else ((j - 0.5) / 255 - m) / s
            # the difference of CDFs, or of survival functions above the
            # median (no cancellation)
            p = (
                logistic_cdf(a) - logistic_cdf(b)
                if b < 0
                else logistic_cdf(-b) - logistic_cdf(-a)
            )
            brute[i] -= math.log(p)
    torch.testing.assert_close(
        discretized_logistic_nll(loc, scale, k), brute, rtol=1e-9, atol=1e-6
    )


@pytest.mark.parametrize("components", [1, 2])
def test_gradients_are_finite_in_the_edge_bins_and_far_from_the_location(
    components,
):
    c = config(
        "discretized_logistic", input_shape=(1, 2, 3), components=components
    )
    out = (
        torch.randn(
            4,
            likelihoods.params_per_pixel(c) * 6,
            generator=torch.Generator().manual_seed(9),
        )
        * 30
    )
    out.requires_grad_(True)
    k = torch.tensor([0.0, 255.0, 1.0, 254.0, 128.0, 0.0]).expand(4, 6)
    likelihoods.nll(c, out, k / 255).sum().backward()
    assert torch.isfinite(out.grad).all()


def config(likelihood, input_shape=(1, 2, 3), **changes):
    return vaelib.VAEConfig(
        input_shape=input_shape,
        hidden_dims=(8,),
        latent_dim=1,
        batch_norm=False,
        dropout=0.0,
        likelihood=likelihood,
        device="cpu",
        **changes,
    )


def one_pixel_table(c, out):
    """P(x = k / 255) for k = 0..255 of a one-pixel likelihood: (B, 256).

    Every value is scored.
    """
    return torch.stack(
        [
            (
                -likelihoods.nll(
                    c, out, torch.full((len(out), 1), j / 255, dtype=F64)
                )
            ).exp()
            for j in range(256)
        ],
        1,
    )


def test_a_mixture_of_logistics_is_the_weighted_sum_of_its_components_and_sums_to_one():  # noqa: E501
    c = config("discretized_logistic", input_shape=(1,), components=3)
    out = torch.randn(
        4,
        likelihoods.params_per_pixel(c),
        generator=torch.Generator().manual_seed(3),
        dtype=F64,
    )
    table = one_pixel_table(c, out)
    torch.testing.assert_close(
        table.sum(1), torch.ones(4, dtype=F64), rtol=0, atol=1e-9
    )
    # weight logits, locations, raw scales: (4, K)
    w, loc, raw_scale = out.view(4, 3, 3).unbind(1)
    w, scale = (
        w.softmax(1),
        c.scale_floor + torch.nn.functional.softplus(raw_scale),
    )
    single = config("discretized_logistic", input_shape=(1,))
    parts = [
        one_pixel_table(single, torch.stack([loc[:, j], raw_scale[:, j]], 1))
        for j in range(3)
    ]
    torch.testing.assert_close(
        table,
        sum(w[:, j : j + 1] * parts[j] for j in range(3)),
        rtol=1e-9,
        atol=1e-12,
    )
    assert scale.min() >= c.scale_floor


@pytest.mark.parametrize(
    "likelihood,components",
    [
        ("discretized_logistic", 1),
        ("discretized_logistic", 2),
        ("continuous_bernoulli", 1),
        ("bernoulli", 1),
    ],
)
def test_decoder_mean_is_the_average_over_the_distribution(
    likelihood, components
):
    c = config(likelihood, input_shape=(1,), components=components)
    out = torch.randn(
        5,
        likelihoods.params_per_pixel(c),
        generator=torch.Generator().manual_seed(4),
        dtype=F64,
    )
    if likelihood == "discretized_logistic":
        # the sum over the 256 values of k / 255 times P(k)
        brute = (
            one_pixel_table(c, out) * torch.arange(256, dtype=F64) / 255
        ).sum(1, keepdim=True)
    elif likelihood == "continuous_bernoulli":
        # the integral of x p(x) over [0, 1]
        xs = torch.linspace(0, 1, 20_001, dtype=F64)
        brute = torch.trapezoid(
            xs * ContinuousBernoulli(logits=out).log_prob(xs).exp(), xs, dim=-1
        )[:, None]
    else:
        brute = torch.sigmoid(out)
    torch.testing.assert_close(
        likelihoods.mean(c, out), brute, rtol=0, atol=1e-6
    )


def test_discretized_logistic_draws_follow_the_bin_probabilities():
    c = config("discretized_logistic", input_shape=(1,), components=2)
    out = torch.randn(
        3,
        likelihoods.params_per_pixel(c),
        generator=torch.Generator().manual_seed(5),
        dtype=F64,
    )
    draws = likelihoods.sample(
        c, out.repeat(20_000, 1), torch.Generator().manual_seed(6)
    ).view(20_000, 3)
    k = torch.round(draws * 255)
    assert torch.equal(draws, k / 255) and k.min() >= 0 and k.max() <= 255
    # probs: (3, 256)
    probs, values = one_pixel_table(c, out), torch.arange(256, dtype=F64)
    mean = (probs * values).sum(1)
    sd = ((probs * values**2).sum(1) - mean**2).sqrt()
    assert ((k.mean(0) - mean).abs() <= 4 * sd / math.sqrt(len(k))).all(), (
        k.mean(0),
        mean,
    )


def test_likelihoods_that_read_8_bit_pixels_refuse_values_off_the_grid():
    for name in (
        "discretized_logistic",
        "continuous_bernoulli",
        "gaussian",
        "gaussian_learned",
    ):
        with pytest.raises(ValueError, match="8-bit pixels k / 255"):
            # 127.5 / 255
            likelihoods.prepare(config(name), torch.full((2, 6), 0.5))
    # grey levels are the Bernoulli's input
    likelihoods.prepare(config("bernoulli"), torch.full((2, 6), 0.5))
    deq = likelihoods.dequantize(
        torch.tensor([[0.0, 1.0, 128 / 255]]), torch.Generator().manual_seed(0)
    )
    assert ((deq * 256).floor() == torch.tensor([[0.0, 255.0, 128.0]])).all()


def test_config_refuses_unknown_likelihoods_and_misplaced_settings():
    with pytest.raises(ValueError, match="likelihood must be one of"):
        config("poisson")
    with pytest.raises(
        ValueError, match="needs likelihood='discretized_logistic'"
    ):
        config("gaussian", components=2)
    with pytest.raises(ValueError, match="sigma"):
        config("gaussian", sigma=0.0)
    # every likelihood field is part of the cache key
    base = vaelib.VAEConfig(likelihood="gaussian_learned")
    for change in (dict(likelihood="gaussian"), dict(scale_floor=1e-2)):
        assert base.replace(**change).key() != base.key()


@pytest.fixture(scope="module")
def tiny_logistic_vae():
    c = config("discretized_logistic", components=2)
    model = vaelib.build_model(c).double().eval()
    with torch.no_grad():
        model.to_logits.weight.mul_(4.0)
    k = torch.randint(
        0, 256, (3, 1, 2, 3), generator=torch.Generator().manual_seed(7)
    )
    k[0, 0, 0] = 0
    return model, k.to(F64) / 255


def brute_force_log_p(model, x, density=False):
    """log P(8-bit x), integrated on a grid, for a 1-D latent.

    It is the log of the integral over z of P(x|z) p(z).
    """
    z = torch.linspace(-12, 12, 8001, dtype=F64)
    log_dz = math.log(24 / 8000)
    with torch.no_grad():
        out = model.decode_logits(z[:, None])
    flat = x.reshape(len(x), -1)
    rows = []
    for image in flat:
        if density:
            # the bin's probability under the continuous Bernoulli,
            # from its CDF
            lam = ContinuousBernoulli(logits=out)
            lo, hi = (
                image.expand_as(out) * 255 / 256,
                (image.expand_as(out) * 255 + 1) / 256,
            )
            log_px_z = (lam.cdf(hi) - lam.cdf(lo)).log().sum(1)
        else:
            log_px_z = -likelihoods.nll(
                model.config, out, image.expand(len(z), -1)
            )
        rows.append(
            torch.logsumexp(
                log_px_z + Normal(0.0, 1.0).log_prob(z) + log_dz, 0
            )
        )
    return torch.stack(rows)


def test_bits_per_dim_of_a_logistic_vae_match_brute_force_integration(
    tiny_logistic_vae,
):
    model, x = tiny_logistic_vae
    exact = brute_force_log_p(model, x)
    bound = log_prob_8bit(model, x, k=20_000)
    assert (bound <= exact + 0.02).all()
    torch.testing.assert_close(bound, exact, rtol=0, atol=0.02)
    assert (
        abs(
            bits_per_dim(bound, 6) - (-exact.mean().item() / (6 * math.log(2)))
        )
        < 0.01
    )
    elbo = log_prob_8bit(model, x, k=1)
    assert (elbo < exact).all()


def test_a_density_adds_log_256_per_pixel_and_bounds_the_8_bit_probability():
    model = vaelib.build_model(config("continuous_bernoulli")).double().eval()
    with torch.no_grad():
        model.to_logits.weight.mul_(4.0)
    x = (
        torch.randint(
            0, 256, (3, 1, 2, 3), generator=torch.Generator().manual_seed(8)
        ).to(F64)
        / 255
    )
    exact = brute_force_log_p(model, x, density=True)
    bound = log_prob_8bit(model, x, k=5000)
    raw = iwae_bound(model, x, k=5000)
    torch.testing.assert_close(bound, raw - 6 * math.log(256))
    # Dequantization's Jensen gap is small for a density this smooth, so the
    # bound is close to exact
    assert (bound <= exact + 0.02).all() and (bound >= exact - 0.1).all(), (
        bound,
        exact,
    )


def test_a_bernoulli_decoder_is_scored_as_its_normalised_version_unless_asked_otherwise(  # noqa: E501
    tiny_logistic_vae,
):
    model = vaelib.build_model(config("bernoulli")).double().eval()
    x = tiny_logistic_vae[1]
    normalised = log_prob_8bit(model, x, k=10)
    as_cb = log_prob_8bit(model, x, k=10, likelihood="continuous_bernoulli")
    raw = log_prob_8bit(model, x, k=10, likelihood="bernoulli")
    torch.testing.assert_close(normalised, as_cb)
    # the normaliser is >= 1 per pixel: the unnormalised number is too low
    assert (normalised > raw).all()
    with pytest.raises(ValueError, match="cannot be scored"):
        iwae_bound(model, x, k=2, likelihood="discretized_logistic")
