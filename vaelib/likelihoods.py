"""The decoder's likelihood p(x|z): outputs, pixel scores, mean, a draw.

What the decoder's outputs mean, how they score pixels, their mean, a draw.

The decoder emits P numbers per pixel, (B, P * D): the location's
pre-activation first, then (for likelihoods with a learned scale) the
scale's. Pixels are 8-bit, stored as k / 255 in [0, 1].

- "bernoulli": sigmoid of the output is the pixel's mean; scored by
  cross-entropy on grey levels, which is not a density (see
  `vaelib.losses.bernoulli_nll`). The classic chapters use it.
- "continuous_bernoulli", "gaussian" (fixed sigma), "gaussian_learned"
  (sigma per pixel, from the decoder, at least config.scale_floor):
  densities on [0, 1] (the Gaussian on the real line), scored on dequantized
  pixels (k + u) / 256, u ~ U(0, 1), so that -log p + D log 256 bounds the
  8-bit negative log-likelihood.
- "discretized_logistic": a probability for each of the 256 values, scored
  on k itself.
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import torch
import torch.nn.functional as F

from .config import VAEConfig
from .repro import draw_on
from .losses import (
    LEVELS,
    bernoulli_nll,
    continuous_bernoulli_nll,
    discretized_logistic_log_probs,
    discretized_logistic_nll,
    gaussian_nll,
)

# scored on dequantized pixels
DENSITIES = ("continuous_bernoulli", "gaussian", "gaussian_learned")
BINS = LEVELS + 1  # 256 pixel values
# nats a density on [0, 1] must add per pixel to score 8-bit pixels
LOG_BINS = math.log(BINS)


def continuous_bernoulli_mean(logits: torch.Tensor) -> torch.Tensor:
    """E[x] of the continuous Bernoulli with lambda = sigmoid(logits).

    Elementwise. In the logit l,

        lambda / (2 lambda - 1) + 1 / (2 artanh(1 - 2 lambda))
            = 1 / (1 - exp(-l)) - 1 / l,

    with its Taylor series 1/2 + l / 12 - l^3 / 720 near l = 0; exact for any
    l (no clamping).
    """
    near_half = logits.abs() < 1e-2
    safe = torch.where(near_half, torch.ones_like(logits), logits)
    far = -1 / torch.expm1(-safe) - 1 / safe
    return torch.where(near_half, 0.5 + logits / 12 - logits.pow(3) / 720, far)


def continuous_bernoulli_icdf(
    logits: torch.Tensor, u: torch.Tensor
) -> torch.Tensor:
    """The x with CDF(x) = u, elementwise: inverse-CDF draws.

    CDF(x) = expm1(l x) / expm1(l). Solved for l < 0 as
    log1p(u expm1(l)) / l; for l > 0 by the symmetry x -> 1 - x, l -> -l.
    """
    a = -logits.abs()  # <= 0
    near_half = a > -1e-4
    safe = torch.where(near_half, -torch.ones_like(a), a)
    v = torch.where(logits < 0, u, 1 - u)
    x = torch.where(near_half, v, torch.log1p(v * torch.expm1(safe)) / safe)
    return torch.where(logits < 0, x, 1 - x)


def params_per_pixel(config: VAEConfig) -> int:
    """How many numbers the decoder emits per pixel.

    1, or 2 with a learned scale, or 3 per mixed logistic.
    """
    if config.likelihood == "gaussian_learned":
        return 2
    if config.likelihood == "discretized_logistic":
        return 2 if config.components == 1 else 3 * config.components
    return 1


def location_and_scale(
    config: VAEConfig, out: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 2D) decoder outputs -> location (B, D), scale (B, D).

    The scale is at least config.scale_floor.
    """
    raw_loc, raw_scale = out.chunk(2, dim=1)
    loc = (
        raw_loc
        if config.likelihood == "discretized_logistic"
        else torch.sigmoid(raw_loc)
    )
    return loc, config.scale_floor + F.softplus(raw_scale)


def _mixture(
    config: VAEConfig, out: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Discretized logistic outputs -> log weights, locations, scales.

    Each of them (B, K, D).
    """
    if config.components == 1:
        loc, scale = location_and_scale(config, out)
        return torch.zeros_like(loc)[:, None], loc[:, None], scale[:, None]
    # weight logits, locations, scales
    raw = out.view(len(out), 3, config.components, config.input_dim)
    return (
        raw[:, 0].log_softmax(1),
        raw[:, 1],
        config.scale_floor + F.softplus(raw[:, 2]),
    )


def grid_levels(x: torch.Tensor, check: bool = True) -> torch.Tensor:
    """Pixels k / 255 in [0, 1] -> the integers k (as floats).

    Refuses values off the 8-bit grid.
    """
    k = torch.round(x * LEVELS)
    if not check:
        # the caller checked the whole data set once (`check_pixels`)
        return k
    off = (x * LEVELS - k).abs().max().item() if x.numel() else 0.0
    if off > 1e-3 or (x.numel() and (k.min() < 0 or k.max() > LEVELS)):
        raise ValueError(
            "This likelihood needs 8-bit pixels k / 255 in [0, 1], "
            "as `load_mnist` gives them; got values "
            f"{off * 255:.3g}/255 off that grid (or outside [0, 1]). "
            "Pass the images as loaded: do not dequantize, blur or rescale "
            "them (the continuous likelihoods dequantize by themselves)."
        )
    return k


def dequantize(
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    check: bool = True,
) -> torch.Tensor:
    """8-bit pixels k / 255 -> (k + u) / 256 with u ~ U(0, 1) per pixel.

    That is a point in bin k of [0, 1].
    """
    k = grid_levels(x, check)
    if generator is None:
        u = torch.rand_like(x)
    else:
        u = torch.rand(
            x.shape,
            generator=generator,
            device=draw_on(generator, x.device),
            dtype=x.dtype,
        )
    return (k + u.to(x.device)) / BINS


def check_pixels(config: VAEConfig, x: torch.Tensor) -> None:
    """Raise a clear error if config.likelihood cannot read these pixels.

    All likelihoods but the Bernoulli need 8-bit ones.
    """
    if config.likelihood != "bernoulli":
        grid_levels(x)


def prepare(
    config: VAEConfig,
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    check: bool = True,
) -> torch.Tensor:
    """The pixels a likelihood scores (and the encoder sees).

    Dequantized for the densities, else x. check=False skips the 8-bit check
    (a training loop checks its data once, not every batch).
    """
    if check:
        check_pixels(config, x)
    return (
        dequantize(x, generator, check=False)
        if config.likelihood in DENSITIES
        else x
    )


def nll(config: VAEConfig, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """-log p(x|z) per image under config.likelihood.

    Decoder outputs (B, P*D), prepared x (B, D) -> (B,).
    """
    name = config.likelihood
    if name == "bernoulli":
        return bernoulli_nll(out, x)
    if name == "continuous_bernoulli":
        return continuous_bernoulli_nll(out, x)
    if name == "gaussian":
        return gaussian_nll(torch.sigmoid(out), config.sigma, x)
    if name == "gaussian_learned":
        return gaussian_nll(*location_and_scale(config, out), x)
    k = grid_levels(x, check=False)
    if config.components == 1:
        return discretized_logistic_nll(*location_and_scale(config, out), k)
    log_w, loc, scale = _mixture(config, out)
    return -torch.logsumexp(
        log_w + discretized_logistic_log_probs(loc, scale, k[:, None]), dim=1
    ).sum(dim=1)


def nll_function(
    config: VAEConfig,
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """`nll` with the config bound: the form `vaelib.losses.vae_loss` takes."""
    return functools.partial(nll, config)


def mean(config: VAEConfig, out: torch.Tensor) -> torch.Tensor:
    """E[x | z] per pixel: decoder outputs (B, P*D) -> (B, D).

    In [0, 1] for all but the Gaussians. For the continuous Bernoulli the mean
    is not lambda = sigmoid(out); for the discretized logistic it is the exact
    average over the 256 values (the edge bins pull it inside [0, 1]).
    """
    name = config.likelihood
    if name == "bernoulli":
        return torch.sigmoid(out)
    if name == "continuous_bernoulli":
        return continuous_bernoulli_mean(out)
    if name == "gaussian":
        return torch.sigmoid(out)
    if name == "gaussian_learned":
        return location_and_scale(config, out)[0]
    values = torch.arange(BINS, dtype=out.dtype, device=out.device)
    rows = []
    for part in out.split(16):  # (16, K, D, 256) at a time
        log_w, loc, scale = (t[..., None] for t in _mixture(config, part))
        probs = (
            (log_w + discretized_logistic_log_probs(loc, scale, values))
            .exp()
            .sum(1)  # (16, D, 256)
        )
        rows.append((probs * values).sum(-1) / LEVELS)
    return torch.cat(rows)


def sample(
    config: VAEConfig,
    out: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One draw x ~ p(x | z) per pixel: decoder outputs (B, P*D) -> (B, D).

    Bernoulli draws are 0 or 1; Gaussian draws can leave [0, 1] (plots clip
    them); discretized logistic draws are 8-bit values k / 255.
    """
    name = config.likelihood
    # the draws are made on the generator's device
    where = draw_on(generator, out.device)
    if name == "bernoulli":
        return torch.bernoulli(
            torch.sigmoid(out).to(where), generator=generator
        ).to(out.device)
    u = torch.rand(
        out.shape[0],
        config.input_dim,
        generator=generator,
        device=where,
        dtype=out.dtype,
    )
    u = u.to(out.device)
    u = u.clamp(1e-7, 1 - 1e-7)
    if name == "continuous_bernoulli":
        return continuous_bernoulli_icdf(out, u)
    if name == "gaussian":
        return torch.sigmoid(out) + config.sigma * math.sqrt(2) * torch.erfinv(
            2 * u - 1
        )
    if name == "gaussian_learned":
        loc, scale = location_and_scale(config, out)
        return loc + scale * math.sqrt(2) * torch.erfinv(2 * u - 1)
    log_w, locs, scales = _mixture(config, out)
    weights = log_w.exp().transpose(1, 2).flatten(0, 1)  # (B * D, K)
    pick = (
        torch.multinomial(weights.to(where), 1, generator=generator)
        .to(out.device)
        .view(len(u), 1, -1)
    )
    loc, scale = locs.gather(1, pick)[:, 0], scales.gather(1, pick)[:, 0]
    # a continuous logistic draw, then its bin
    logistic = loc + scale * (u.log() - torch.log1p(-u))
    return torch.round(logistic * LEVELS).clamp(0, LEVELS) / LEVELS
