"""The IAF posterior: its log-density against change of variables."""

import pytest
import torch

import vaelib
from vaelib.flows import GATE_BIAS, IAF, IAFStep, made_masks


def _perturb(module: torch.nn.Module, seed: int = 0) -> None:
    """Random weights (sd 0.3), far from a fresh flow's near-identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))


@pytest.mark.parametrize("latent", [1, 2, 5])
def test_made_masks_let_output_i_see_only_inputs_before_it(latent):
    to_hidden, to_out = made_masks(latent, 16)
    reach = (to_out.double() @ to_hidden.double()) > 0  # (2L, L)
    for i in range(latent):
        for row in (i, latent + i):
            assert not reach[row, i:].any()
    if latent > 1:  # the last coordinate sees every earlier one
        assert reach[latent - 1, : latent - 1].all()


def test_an_iaf_step_has_a_triangular_jacobian_with_diagonal_gates():
    step = IAFStep(4, 3, hidden=12).double()
    _perturb(step)
    z, h = torch.randn(4, dtype=torch.float64), torch.randn(3).double()
    jac = torch.autograd.functional.jacobian(lambda v: step(v, h)[0], z)
    assert torch.allclose(jac.triu(1), torch.zeros_like(jac))
    log_det = step(z, h)[1]
    assert torch.allclose(jac.diagonal().log().sum(), log_det)


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_iaf_log_det_matches_the_brute_force_jacobian(steps):
    flow = IAF(3, 5, steps).double()
    _perturb(flow, seed=steps)
    g = torch.Generator().manual_seed(10 + steps)
    h = torch.randn(2, 5, generator=g, dtype=torch.float64)
    z0 = torch.randn(2, 3, generator=g, dtype=torch.float64)
    _, log_det = flow(z0, h)
    for n in range(2):
        jac = torch.autograd.functional.jacobian(
            lambda v: flow(v[None], h[n : n + 1])[0][0], z0[n]
        )
        assert abs(torch.linalg.slogdet(jac)[1] - log_det[n]) < 1e-9
        # the flow really mixes coordinates: the test could fail
        assert (jac - jac.diagonal().diag()).abs().max() > 0.05


def test_a_flow_posterior_log_q_is_the_change_of_variables_density():
    config = vaelib.VAEConfig(
        hidden_dims=(8,),
        latent_dim=3,
        flow_steps=2,
        batch_norm=False,
        dropout=0.0,
        device="cpu",  # the inputs below are CPU tensors, GPU or not
    )
    model = vaelib.build_model(config).double()
    _perturb(model.flow, seed=4)
    x = torch.rand(2, 1, 28, 28, dtype=torch.float64)
    post = model.posterior(x)
    eps = torch.randn(2, 3, dtype=torch.float64)
    _, log_q = model.draw(post, eps)
    for n in range(2):
        mu, std = post.mu[n], torch.exp(0.5 * post.logvar[n])
        h = post.context[n : n + 1]
        z0 = mu + std * eps[n]
        jac = torch.autograd.functional.jacobian(
            lambda v, h=h: model.flow(v[None], h)[0][0], z0
        )
        base = torch.distributions.Normal(mu, std).log_prob(z0).sum()
        expected = base - torch.linalg.slogdet(jac)[1]
        assert abs(log_q[n] - expected) < 1e-9


def test_with_zero_weights_every_step_scales_z_by_its_gate_bias():
    flow = IAF(4, 6, 3)
    with torch.no_grad():
        for p in flow.parameters():
            p.zero_()
    z0 = torch.randn(10, 4)
    z, log_det = flow(z0, torch.randn(10, 6))
    gate = torch.sigmoid(torch.tensor(GATE_BIAS))
    torch.testing.assert_close(z, gate**3 * z0)
    torch.testing.assert_close(log_det, torch.full((10,), 12 * gate.log()))
