"""Inference gaps against numerical integration on a 1-D latent model."""

import math

import pytest
import torch

import vaelib
from integrate import elbo, grid, log_marginal, log_px_given_z_on_grid
from vaelib import gaps


def best_gaussian_elbo(model, x, rounds=4, points=31):
    """The best 1-D Gaussian's ELBO per image, by brute-force search.

    Every candidate (m, log s) on a grid is scored by integrating
    E_q[log p(x|z)] on the z grid; the search window shrinks around the
    best candidate each round. Independent of Adam and of sampling.
    """
    z, log_dz = grid(n=4001, limit=8.0)
    log_lik = log_px_given_z_on_grid(model, x, z)  # (N, G)
    best = []
    for lik in log_lik:
        m_lo, m_hi, s_lo, s_hi = -4.0, 4.0, math.log(0.02), math.log(2.0)
        for _ in range(rounds):
            m = torch.linspace(m_lo, m_hi, points, dtype=torch.float64)
            log_s = torch.linspace(s_lo, s_hi, points, dtype=torch.float64)
            mm, ss = torch.meshgrid(m, log_s, indexing="ij")
            q = torch.distributions.Normal(mm[..., None], ss.exp()[..., None])
            w = torch.softmax(q.log_prob(z) + log_dz, dim=-1)
            kl = 0.5 * (mm**2 + (2 * ss).exp() - 1 - 2 * ss)
            value = (w * lik).sum(-1) - kl  # (points, points)
            i, j = divmod(int(value.argmax()), points)
            dm, ds = m[1] - m[0], log_s[1] - log_s[0]
            m_lo, m_hi = m[i] - 2 * dm, m[i] + 2 * dm
            s_lo, s_hi = log_s[j] - 2 * ds, log_s[j] + 2 * ds
        best.append(value.max())
    return torch.stack(best)


def test_elbo_estimate_matches_the_integrated_elbo(tiny_vae):
    model, x = tiny_vae
    estimate, se = gaps.elbo_estimate(model, x, samples=20_000)
    truth = elbo(model, x)
    assert (estimate - truth).abs().max() < 4 * se.max(), (estimate, truth)
    assert se.max() < 0.02  # precise enough to mean something


def test_optimised_gaussian_is_the_best_gaussian(tiny_vae):
    model, x = tiny_vae
    before = {k: v.clone() for k, v in model.state_dict().items()}
    post = gaps.optimise_posterior(model, x, steps=200, lr=0.05, samples=16)
    star, se = gaps.elbo_estimate(model, x, post, samples=20_000)
    best = best_gaussian_elbo(model, x)
    # Adam with noisy gradients lands near the optimum, where the ELBO is
    # flat: within Monte Carlo error plus 0.01 nats of the searched best
    assert (star - best).abs().max() < 4 * se.max() + 0.01, (star, best)
    # ... above the untrained encoder's Gaussian, below log p(x)
    encoder, _ = gaps.elbo_estimate(model, x, samples=20_000)
    assert (star - encoder).min() > 0.1, (star, encoder)
    assert (star - log_marginal(model, x)).max() < 4 * se.max()
    # the decoder was frozen and is left as it was
    assert all(
        torch.equal(v, model.state_dict()[k]) for k, v in before.items()
    )
    assert all(p.requires_grad for p in model.parameters())


def test_frozen_restores_training_mode_and_gradients(tiny_vae):
    model, _ = tiny_vae
    model.train()
    with gaps.frozen(model):
        assert not model.training
        assert not any(p.requires_grad for p in model.parameters())
    assert model.training and all(p.requires_grad for p in model.parameters())
    model.eval()


def test_bad_input_is_explained(tiny_vae):
    model, x = tiny_vae
    with pytest.raises(ValueError, match="steps >= 1"):
        gaps.optimise_posterior(model, x, steps=0, lr=0.1, samples=1)
    conditional = vaelib.build_model(
        vaelib.VAEConfig(num_classes=10, device="cpu")
    )
    with pytest.raises(ValueError, match="conditional"):
        gaps.elbo_estimate(conditional, torch.rand(2, 1, 28, 28))


def test_refined_iwae_reaches_log_px_and_beats_a_poor_proposal(tiny_vae):
    model, x = tiny_vae
    truth = log_marginal(model, x)
    post = gaps.optimise_posterior(model, x, steps=200, lr=0.05, samples=16)
    refined = gaps.refined_iwae_bound(model, x, post, k=5000)
    assert torch.allclose(refined, truth, atol=0.01), (refined, truth)
    # the same k from a proposal far off the posterior is much looser
    far = gaps.refined_iwae_bound(
        model, x, post._replace(mu=post.mu + 3.0), k=5000
    )
    assert (truth - far).min() > 0.1, (far, truth)


def test_a_flow_posterior_is_refined_through_its_context(small):
    config = vaelib.VAEConfig(
        hidden_dims=(64,),
        latent_dim=2,
        flow_steps=2,
        batch_norm=False,
        dropout=0.0,
        epochs=2,
        device="cpu",
    )
    model = vaelib.build_model(config)
    vaelib.fit(model, small, config, progress=False)
    x = small.val.images[:50]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    start = model.posterior(model.flatten(x)).context.detach()
    post = gaps.optimise_posterior(model, x, steps=50, lr=0.05, samples=8)
    assert not torch.allclose(post.context, start)
    elbo, se = gaps.elbo_estimate(model, x, samples=2000)
    star, se_star = gaps.elbo_estimate(model, x, post, samples=2000)
    bound = gaps.refined_iwae_bound(model, x, post, k=2000)
    # ELBO <= ELBO* <= log p(x) bound, image by image, within 4 SE
    assert (star - elbo).mean() > 4 * se.max()
    assert (star - bound).max() < 4 * se_star.max()
    # the decoder and the flow were frozen
    assert all(
        torch.equal(v, model.state_dict()[k]) for k, v in before.items()
    )
