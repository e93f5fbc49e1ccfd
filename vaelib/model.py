"""The VAE: a Gaussian MLP encoder and an MLP decoder for p(x|z).

The decoder's outputs parameterise p(x|z). Its likelihood is
config.likelihood (Bernoulli logits by default; see `vaelib.likelihoods`).

With config.num_classes > 0 it is a conditional VAE (Sohn et al., 2015): the
one-hot label is appended to the encoder's input and to the decoder's input,
so z only has to describe style.

Two options replace the Gaussian pieces: config.flow_steps > 0 pushes
q(z|x) through an inverse autoregressive flow (`vaelib.flows`), and
config.prior = "mog" or "vamp" learns p(z) (`vaelib.priors`). The KL term
then has no closed form: `VAE.kl` estimates it from the sampled code.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from . import likelihoods
from .config import VAEConfig, resolve_device
from .flows import IAF
from .losses import LOG_2PI, gaussian_kl
from .priors import MixturePrior, VampPrior, log_mixture, sample_mixture
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
    # (B,) log q(z|x) of that sample; None where the KL has a closed form
    log_q: torch.Tensor | None = None


class Posterior(NamedTuple):
    """What the encoder says about a batch: q(z|x) of every image.

    mu, logvar (B, L) give the Gaussian; context (B, H) steers a flow
    posterior's steps (None without a flow).
    """

    mu: torch.Tensor
    logvar: torch.Tensor
    context: torch.Tensor | None = None


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


def standard_normal(
    like: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """eps ~ N(0, I) of like's shape, device and dtype."""
    shape = tuple(like.shape)
    if generator is None:
        return torch.randn(shape, device=like.device, dtype=like.dtype)
    eps = torch.randn(
        shape,
        generator=generator,
        device=draw_on(generator, like.device),
        dtype=like.dtype,
    )
    return eps.to(like.device)


def reparameterize(
    mu: torch.Tensor,
    logvar: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """z = mu + sigma * eps with eps ~ N(0, I): (B, L) -> (B, L).

    Differentiable in mu and logvar.
    """
    return mu + torch.exp(0.5 * logvar) * standard_normal(mu, generator)


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
        context = hidden[-1] if hidden else config.input_dim + n_cls
        self.flow = (
            IAF(config.latent_dim, context, config.flow_steps)
            if config.flow_steps
            else None
        )
        k = config.prior_components
        self.learned_prior = (
            MixturePrior(k, config.latent_dim)
            if config.prior == "mog"
            else VampPrior(k, config.input_dim)
            if config.prior == "vamp"
            else None
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

    def posterior(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> Posterior:
        """x (B, C, H, W) [, labels (B,)] -> q(z|x): mu, logvar, context."""
        h = self.encoder(self.with_labels(self.flatten(x), labels))
        context = h if self.flow is not None else None
        return Posterior(self.to_mu(h), self.to_logvar(h), context)

    def encode(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C, H, W) [, labels (B,)] -> mu (B, L), logvar (B, L).

        The Gaussian of q(z|x); a flow posterior moves its draws further.
        """
        post = self.posterior(x, labels)
        return post.mu, post.logvar

    def draw(
        self, post: Posterior, eps: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Codes z and log q(z|x) from noise eps (..., B, L) ~ N(0, I).

        z is (..., B, L) and log q(z|x) (..., B): the Gaussian's draw
        mu + sigma * eps, moved by the flow if there is one (minus its
        log |det|).
        """
        z = post.mu + torch.exp(0.5 * post.logvar) * eps
        log_q = -0.5 * (eps.pow(2) + LOG_2PI + post.logvar).sum(-1)
        if self.flow is not None:
            z, log_det = self.flow(z, post.context)
            log_q = log_q - log_det
        return z, log_q

    def prior_mixture(
        self,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A learned prior's means, logvars (K, L) and log-weights (K,)."""
        if self.learned_prior is None:
            raise ValueError(
                "this VAE's prior is the standard N(0, I), not a mixture; "
                "train one with VAEConfig(prior='mog' or 'vamp')"
            )
        return self.learned_prior.mixture(self.encode)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) of codes (..., L) -> (...)."""
        if self.learned_prior is None:
            return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
        return log_mixture(z, *self.prior_mixture())

    def kl(self, out: VAEOutput) -> torch.Tensor:
        """KL(q(z|x) || p(z)) of every image of a forward pass: (B,).

        Closed form for a diagonal Gaussian against N(0, I); otherwise the
        one-sample estimate log q(z|x) - log p(z) at the pass's own z.
        """
        if out.log_q is None:
            return gaussian_kl(out.mu, out.logvar)
        return out.log_q - self.log_prior(out.z)

    @torch.no_grad()
    def prior_sample(
        self, n: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """n codes z ~ p(z), (n, L), on the model's device."""
        device = next(self.parameters()).device
        if self.learned_prior is not None:
            return sample_mixture(n, *self.prior_mixture(), generator)
        z = torch.randn(
            n,
            self.config.latent_dim,
            generator=generator,
            device=draw_on(generator, device),
        )
        return z.to(device)

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
        """x (B, C, H, W) [, labels (B,)] -> logits, mu, logvar, z, log_q.

        Shapes: logits (B, D), mu, logvar and z (B, L), log_q (B,) or None
        (when `kl` has a closed form).
        """
        post = self.posterior(x, labels)
        if self.config.closed_form_kl:
            z, log_q = reparameterize(post.mu, post.logvar, generator), None
        else:
            z, log_q = self.draw(post, standard_normal(post.mu, generator))
        return VAEOutput(
            self.decode_logits(z, labels), post.mu, post.logvar, z, log_q
        )

    @torch.no_grad()
    def mean_images(
        self,
        n: int,
        generator: torch.Generator | None = None,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Decoder means (n, C, H, W) of n codes z ~ p(z).

        A conditional model needs labels (n,).
        """
        return self.decode(self.prior_sample(n, generator), labels)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        generator: torch.Generator | None = None,
        labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """n images (n, C, H, W) drawn from the model.

        First z ~ p(z), then every pixel x ~ p(x | z). Bernoulli draws are
        black-and-white. With the same generator state they use the same
        codes z as `mean_images`, so the two can be shown side by side.
        """
        z = self.prior_sample(n, generator)
        draws = likelihoods.sample(
            self.config, self.decode_logits(z, labels), generator
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
