"""The VAE: a Gaussian MLP encoder and an MLP decoder for p(x|z).

The decoder's outputs parameterise p(x|z). Its likelihood is
config.likelihood (Bernoulli logits by default; see `vaelib.likelihoods`).

With config.num_classes > 0 it is a conditional VAE (Sohn et al., 2015): the
one-hot label is appended to the encoder's input and to the decoder's input,
so z only has to describe style.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from . import likelihoods
from .config import VAEConfig, resolve_device
from .repro import draw_on


class VAEOutput(NamedTuple):
    """What one forward pass returns.

    B = batch size, D = pixels, L = latent_dim.
    """

    # (B, P*D) decoder outputs: Bernoulli logits (P = 1) by default,
    # see vaelib.likelihoods
    logits: torch.Tensor
    mu: torch.Tensor  # (B, L) mean of q(z|x)
    logvar: torch.Tensor  # (B, L) log-variance of q(z|x)
    z: torch.Tensor  # (B, L) the reparameterised sample fed to the decoder


ACTIVATIONS = {"relu": nn.ReLU, "elu": nn.ELU, "silu": nn.SiLU}


def mlp(
    sizes: list[int],
    batch_norm: bool,
    dropout: float,
    activation: str = "relu",
) -> nn.Sequential:
    """Linear -> [BatchNorm] -> activation -> [Dropout], layer by layer.

    One such block for each consecutive pair in `sizes`.
    """
    layers: list[nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers.append(nn.Linear(n_in, n_out))
        if batch_norm:
            layers.append(nn.BatchNorm1d(n_out))
        layers.append(ACTIVATIONS[activation]())
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def reparameterize(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """z = mu + sigma * eps with eps ~ N(0, I): (B, L) -> (B, L).

    Differentiable in mu and logvar.
    """
    if generator is None:
        eps = torch.randn_like(mu)
    else:
        eps = torch.randn(
            mu.shape,
            generator=generator,
            device=draw_on(generator, mu.device),
            dtype=mu.dtype,
        )
        eps = eps.to(mu.device)
    return mu + torch.exp(0.5 * logvar) * eps


class VAE(nn.Module):
    """MLP VAE: x (B, C, H, W) -> q(z|x) -> decoder outputs (B, P*D).

    q(z|x) = N(mu, diag(exp(logvar))); the decoder outputs parameterise
    p(x|z).
    """

    def __init__(self, config: VAEConfig | None = None):
        super().__init__()
        self.config = config = config or VAEConfig()
        hidden = list(config.hidden_dims)
        n_cls = config.num_classes
        self.encoder = mlp(
            [config.input_dim + n_cls, *hidden],
            config.batch_norm,
            config.dropout,
            config.activation,
        )
        self.to_mu = nn.Linear(
            hidden[-1] if hidden else config.input_dim + n_cls,
            config.latent_dim,
        )
        self.to_logvar = nn.Linear(
            hidden[-1] if hidden else config.input_dim + n_cls,
            config.latent_dim,
        )
        self.decoder = mlp(
            [config.latent_dim + n_cls, *reversed(hidden)],
            config.batch_norm,
            config.dropout,
            config.activation,
        )
        self.to_logits = nn.Linear(
            hidden[0] if hidden else config.latent_dim + n_cls,
            config.input_dim * likelihoods.params_per_pixel(config),
        )

    def flatten(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) or (B, D) -> (B, D), a clear error for other shapes."""
        shape, d = tuple(self.config.input_shape), self.config.input_dim
        if x.ndim >= 2 and (
            tuple(x.shape[1:]) == shape or tuple(x.shape[1:]) == (d,)
        ):
            return x.reshape(len(x), d)
        raise ValueError(
            f"VAE expects a batch of shape (B, {', '.join(map(str, shape))}) "
            f"or (B, {d}); got {tuple(x.shape)}. "
            f"For one image add a batch dimension: x.unsqueeze(0)."
        )

    def with_labels(
        self, h: torch.Tensor, labels: torch.Tensor | None
    ) -> torch.Tensor:
        """(B, K) -> (B, K + num_classes) with one-hot labels appended.

        Unchanged for an unconditional model.
        """
        n_cls = self.config.num_classes
        if not n_cls:
            if labels is not None:
                raise ValueError(
                    "labels were given to an unconditional VAE "
                    "(num_classes=0); drop them, or train a conditional one "
                    "with VAEConfig(num_classes=10)."
                )
            return h
        if labels is None:
            raise ValueError(
                f"This VAE is conditional (num_classes={n_cls}): pass labels, "
                f"a (B,) tensor of integers in 0..{n_cls - 1}, "
                f"e.g. model(x, labels) or model.decode(z, labels)."
            )
        labels = torch.as_tensor(labels, device=h.device)
        if labels.shape != (len(h),) or labels.dtype.is_floating_point:
            raise ValueError(
                f"labels must be integers of shape ({len(h)},), "
                f"one per image; got {labels.dtype} {tuple(labels.shape)}"
            )
        if len(labels) and (labels.min() < 0 or labels.max() >= n_cls):
            raise ValueError(
                f"labels must lie in 0..{n_cls - 1}; "
                f"got values from {labels.min().item()} "
                f"to {labels.max().item()}"
            )
        return torch.cat(
            [h, F.one_hot(labels.long(), n_cls).to(h.dtype)], dim=1
        )

    def encode(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, H, W) [, labels (B,)] -> mu (B, L), logvar (B, L)."""
        h = self.encoder(self.with_labels(self.flatten(x), labels))
        return self.to_mu(h), self.to_logvar(h)

    def decode_logits(
        self, z: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """z (B, L) [, labels (B,)] -> decoder outputs (B, P*D).

        By default these are Bernoulli logits (B, D).
        """
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(
                f"decode expects z of shape (B, {self.config.latent_dim}); "
                f"got {tuple(z.shape)}"
            )
        return self.to_logits(self.decoder(self.with_labels(z, labels)))

    def decode(
        self, z: torch.Tensor, labels: torch.Tensor | None = None
    ) -> torch.Tensor:
        """z (B, L) [, labels (B,)] -> mean images E[x | z], (B, C, H, W).

        The decoder's means. For the Bernoulli likelihood
        E[x | z] = sigmoid(logits). A mean image is not a sample: `sample`
        draws x ~ p(x | z).
        """
        means = likelihoods.mean(self.config, self.decode_logits(z, labels))
        return means.reshape(len(z), *self.config.input_shape)

    def forward(
        self,
        x: torch.Tensor,
        labels: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> VAEOutput:
        """x (B, C, H, W) [, labels (B,)] -> logits, mu, logvar, z.

        Shapes: logits (B, D), mu, logvar and z (B, L).
        """
        mu, logvar = self.encode(x, labels)
        z = reparameterize(mu, logvar, generator)
        return VAEOutput(self.decode_logits(z, labels), mu, logvar, z)

    @torch.no_grad()
    def mean_images(
        self,
        n: int,
        generator: torch.Generator | None = None,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Decoder means (n, C, H, W) of n codes z ~ N(0, I).

        A conditional model needs labels (n,).
        """
        device = next(self.parameters()).device
        z = torch.randn(
            n,
            self.config.latent_dim,
            generator=generator,
            device=draw_on(generator, device),
        )
        return self.decode(z.to(device), labels)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """n images (n, C, H, W) drawn from the model.

        First z ~ N(0, I), then every pixel x ~ p(x | z). Bernoulli draws are
        black-and-white. With the same generator state they use the same
        codes z as `mean_images`, so the two can be shown side by side.
        """
        device = next(self.parameters()).device
        z = torch.randn(
            n,
            self.config.latent_dim,
            generator=generator,
            device=draw_on(generator, device),
        )
        draws = likelihoods.sample(
            self.config, self.decode_logits(z.to(device), labels), generator
        )
        return draws.reshape(n, *self.config.input_shape)


def build_model(config: VAEConfig) -> VAE:
    """A freshly initialised VAE on config.device.

    Its weights depend only on config.seed.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = VAE(config)
    return model.to(resolve_device(config.device))


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters.

    BatchNorm running statistics are buffers, not counted.
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def train_flops_per_image(model: nn.Module) -> float:
    """Matmul FLOPs to train on one image.

    Forward, weight gradients, and every input gradient but layer 1's.
    """
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    macs = sum(m.in_features * m.out_features for m in linears)
    return 2.0 * (3 * macs - linears[0].in_features * linears[0].out_features)
