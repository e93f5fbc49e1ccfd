import math

import pytest
import torch

import vaelib

from vaelib import (
    VAE,
    VAEConfig,
    count_parameters,
    reparameterize,
    train_flops_per_image,
)


def test_seed_architecture_has_470_804_parameters():
    assert count_parameters(VAE(VAEConfig())) == 470_804
    # 784-256-128-(2+2) encoder, 2-128-256-784 decoder, 4 batch norms of 2
    # parameters per unit
    linear = (
        (784 * 256 + 256)
        + (256 * 128 + 128)
        + 2 * (128 * 2 + 2)
        + (2 * 128 + 128)
        + (128 * 256 + 256)
        + (256 * 784 + 784)
    )
    assert linear + 2 * (256 + 128 + 128 + 256) == 470_804
    assert count_parameters(VAE(VAEConfig(batch_norm=False))) == linear


def test_shapes_of_one_batch():
    model = VAE(VAEConfig(latent_dim=3)).eval()
    x = torch.rand(5, 1, 28, 28)
    out = model(x)
    assert (out.logits.shape == (5, 784)) and (
        out.mu.shape == out.logvar.shape == out.z.shape == (5, 3)
    )
    assert model.decode(out.z).shape == (5, 1, 28, 28)
    assert torch.equal(
        model(
            x.reshape(5, 784), generator=torch.Generator().manual_seed(0)
        ).mu,
        model(x, generator=torch.Generator().manual_seed(0)).mu,
    )


@pytest.mark.parametrize(
    "shape", [(1, 28, 28), (5, 28, 28), (5, 1, 32, 32), (5, 783)]
)
def test_wrong_input_shape_raises_a_clear_error(shape):
    with pytest.raises(ValueError) as err:
        VAE().eval()(torch.rand(*shape))
    assert (f"got {shape}" in str(err.value)) and (
        "(B, 1, 28, 28)" in str(err.value)
    )


def test_wrong_latent_shape_raises_a_clear_error():
    with pytest.raises(
        ValueError, match=r"decode expects z of shape \(B, 2\); got \(4, 3\)"
    ):
        VAE().decode(torch.zeros(4, 3))


def test_reparameterized_samples_have_the_posterior_mean_and_variance():
    n = 400_000
    mu = torch.tensor([1.0, -2.0], dtype=torch.float64).expand(n, 2)
    var = torch.tensor([0.25, 4.0], dtype=torch.float64)
    z = reparameterize(
        mu, var.log().expand(n, 2), torch.Generator().manual_seed(0)
    )
    assert torch.all((z.mean(0) - mu[0]).abs() < 4 * (var / n).sqrt())
    assert torch.all((z.var(0) - var).abs() < 4 * var * math.sqrt(2 / n))


def test_gradients_flow_to_mu_and_logvar():
    mu = torch.tensor([[0.5, -1.0]], requires_grad=True)
    logvar = torch.tensor([[0.2, -0.4]], requires_grad=True)
    z = reparameterize(mu, logvar, torch.Generator().manual_seed(0))
    (z**2).sum().backward()
    eps = torch.randn(1, 2, generator=torch.Generator().manual_seed(0))
    sigma = (0.5 * logvar.detach()).exp()
    torch.testing.assert_close(mu.grad, 2 * z.detach())  # dz/dmu = 1
    # dz/dlogvar = sigma eps / 2
    torch.testing.assert_close(logvar.grad, 2 * z.detach() * 0.5 * sigma * eps)


def test_mean_images_are_grey_and_samples_are_bernoulli_draws_from_them():
    model = VAE().eval()
    # pixel means spread over (0, 1) instead of all near 0.5
    with torch.no_grad():
        model.to_logits.bias.copy_(torch.linspace(-4, 4, 784))
    means = torch.cat(
        [
            model.mean_images(8, torch.Generator().manual_seed(s))
            for s in range(50)
        ]
    )
    draws = torch.cat(
        [model.sample(8, torch.Generator().manual_seed(s)) for s in range(50)]
    )
    assert (
        means.shape == draws.shape == (400, 1, 28, 28)
        and 0 < means.min()
        and means.max() < 1
    )
    # a draw from p(x|z) is black and white
    assert set(draws.unique().tolist()) == {0.0, 1.0}
    # same generator state -> same codes: each draw is Bernoulli(its own mean
    # image)
    se = (means * (1 - means)).sum().sqrt() / means.numel()
    assert abs((draws - means).mean()) < 4 * se
    dark, light = means < 0.1, means > 0.9
    assert draws[dark].mean() < 0.1 and draws[light].mean() > 0.9


def test_training_flops_match_pytorchs_own_count():
    from torch.utils.flop_counter import FlopCounterMode

    model = VAE(VAEConfig()).train()
    # an input that needs no gradient, as in training
    x = torch.rand(64, 1, 28, 28)
    with FlopCounterMode(display=False) as counter:
        out = model(x)
        out.logits.sum().backward()
    # every matmul FLOP PyTorch ran (forward + backward), per image
    assert (
        counter.get_total_flops() / 64
        == train_flops_per_image(model)
        == 2_404_864  # the "about 2.40 MFLOP"
    )


def test_conditional_model_appends_one_hot_labels():
    plain, cond = (
        VAE(VAEConfig(batch_norm=False)),
        VAE(VAEConfig(batch_norm=False, num_classes=10)),
    )
    # first layer of each side
    assert (
        count_parameters(cond) - count_parameters(plain) == 10 * 256 + 10 * 128
    )
    x, y = torch.rand(4, 1, 28, 28), torch.tensor([0, 3, 9, 3])
    out = cond.eval()(x, y)
    assert out.logits.shape == (4, 784) and out.mu.shape == (4, 2)
    assert cond.sample(4, labels=y).shape == (4, 1, 28, 28)


@pytest.mark.parametrize(
    "labels, message",
    [
        (None, "conditional .* pass labels"),
        (torch.tensor([0, 1, 2]), r"shape \(4,\)"),
        (torch.tensor([0.0, 1.0, 2.0, 3.0]), "integers"),
        (torch.tensor([0, 1, 2, 10]), r"0\.\.9"),
    ],
)
def test_conditional_model_explains_bad_labels(labels, message):
    model = VAE(VAEConfig(num_classes=10))
    with pytest.raises(ValueError, match=message):
        model(torch.rand(4, 1, 28, 28), labels)


def test_unconditional_model_refuses_labels():
    with pytest.raises(ValueError, match="unconditional"):
        VAE(VAEConfig()).decode(torch.zeros(2, 2), torch.tensor([1, 2]))


def test_a_cpu_generator_drives_a_model_on_another_device(monkeypatch):
    """Every draw happens on the generator's device, not the model's.

    seed_everything returns a CPU generator; with a model on a GPU every draw
    must happen on the generator's device (PyTorch refuses a CPU generator for
    GPU draws). The 'meta' device stands in for the GPU: it does not check
    generators, so a spy records where each draw is made.
    """
    seen = []

    def spy(draw):
        def drawn(*args, generator=None, device=None, **kwargs):
            if generator is not None:
                # bernoulli/multinomial: input's
                where = device if device is not None else args[0].device
                seen.append((draw.__name__, torch.device(where).type))
            return draw(
                *args,
                generator=generator,
                **({} if device is None else {"device": device}),
                **kwargs,
            )

        return drawn

    for name in ("randn", "rand", "bernoulli", "multinomial"):
        monkeypatch.setattr(torch, name, spy(getattr(torch, name)))
    generator = torch.Generator().manual_seed(0)
    model = (
        vaelib.build_model(vaelib.VAEConfig(latent_dim=3, device="cpu"))
        .to("meta")
        .eval()
    )
    assert model.mean_images(4, generator).device.type == "meta"
    mu = torch.zeros(4, 3, device="meta")
    assert vaelib.reparameterize(mu, mu, generator).device.type == "meta"
    x = torch.full((2, 6), 3 / 255, device="meta")
    assert (
        vaelib.likelihoods.dequantize(x, generator, check=False).device.type
        == "meta"
    )
    assert ({name for name, _ in seen} == {"randn", "rand"}) and (
        {where for _, where in seen} == {"cpu"}
    )
