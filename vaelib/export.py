"""A VAE's networks exported for the browser, and the numbers the page shows.

The encoder and the decoder leave PyTorch in one format: dense layers with
batch norm folded in, each weight row as int16 codes with one float32 scale.
`pack` turns named arrays into one deflated, base-85 text that
`static/explorer.js` unpacks. `run_layers` does in PyTorch what the page
does in JavaScript, so the tests can hold the two to the same numbers.
"""

from __future__ import annotations

import base64
import zlib

import numpy as np
import torch
from torch import nn

from .losses import bernoulli_nll, gaussian_kl
from .model import ACTIVATIONS, VAE

DRAWS = 4  # fixed draws z ~ q(z|x) the page decodes and scores with
NOISE_SEED = 0  # seeds the fixed draws
REFERENCE_POINTS = 1001  # quantiles of the reference scores the page keeps
_ACTIVATION_NAMES = {cls: name for name, cls in ACTIVATIONS.items()}
# Python's base-85 alphabet with &, <, > (unsafe in HTML) and *, | (read as
# Markdown by the book's checks of rendered pages) swapped for safe characters
_SAFE = bytes.maketrans(b"&<>*|", b".,:[]")


def _check_exportable(model: VAE) -> None:
    """Clear errors for the VAEs the browser cannot run."""
    config = model.config
    if config.num_classes:
        raise ValueError(
            "The explorers show unconditional VAEs; this one is conditional "
            f"(num_classes={config.num_classes}). Decode it with "
            "model.decode(z, labels)."
        )
    if config.likelihood != "bernoulli":
        raise ValueError(
            "The explorers draw a Bernoulli decoder's mean, sigmoid(logits); "
            f"this VAE's likelihood is {config.likelihood!r}, whose mean "
            "image needs more than a sigmoid. Show it with model.decode(z) "
            "in a kernel."
        )


def _double(t: torch.Tensor) -> torch.Tensor:
    return t.detach().double().cpu()


def dense_layers(modules) -> list[dict]:
    """Eval-mode Linear, BatchNorm, activation and Dropout -> dense layers.

    Each layer is {W (out, in), b (out,), act}, batch norm folded into W
    and b.
    """
    layers: list[dict] = []
    for module in modules:
        if isinstance(module, nn.Linear):
            layers.append(
                {
                    "W": _double(module.weight),
                    "b": _double(module.bias),
                    "act": "linear",
                }
            )
        elif isinstance(module, nn.BatchNorm1d):
            # y = gamma * (Wx + b - mean) / sqrt(var + eps) + beta
            std = torch.sqrt(_double(module.running_var) + module.eps)
            scale = _double(module.weight) / std
            last = layers[-1]
            last["W"] = last["W"] * scale[:, None]
            centred = last["b"] - _double(module.running_mean)
            last["b"] = centred * scale + _double(module.bias)
        elif type(module) in _ACTIVATION_NAMES:
            layers[-1]["act"] = _ACTIVATION_NAMES[type(module)]
        elif not isinstance(module, nn.Dropout):
            name = type(module).__name__
            raise TypeError(f"cannot export a {name} layer")
    return layers


def decoder_layers(model: VAE) -> list[dict]:
    """The decoder as dense layers: z (B, L) -> Bernoulli logits (B, D)."""
    _check_exportable(model)
    return dense_layers([*model.decoder, model.to_logits])


def encoder_layers(model: VAE) -> list[dict]:
    """The encoder as dense layers: x (B, D) -> [mu, logvar] (B, 2L)."""
    _check_exportable(model)
    layers = dense_layers(model.encoder)
    heads = dense_layers([model.to_mu]) + dense_layers([model.to_logvar])
    layers.append(
        {
            "W": torch.cat([h["W"] for h in heads]),
            "b": torch.cat([h["b"] for h in heads]),
            "act": "linear",
        }
    )
    return layers


def quantize_rows(W: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """W (out, in) -> int16 codes and a float32 scale per row.

    W ~ codes * scale[:, None].
    """
    scale = (W.abs().amax(dim=1) / 32767).clamp_min(1e-30).float()
    codes = torch.round(W / scale.double()[:, None]).clamp(-32767, 32767)
    return codes.to(torch.int16).numpy(), scale.numpy()


def run_layers(
    layers: list[dict], x: torch.Tensor, quantized: bool = False
) -> torch.Tensor:
    """Exported layers on x (B, in) -> (B, out), in float64.

    quantized=True uses the page's int16 weights and float32 biases.
    """
    functions = {name: cls() for name, cls in ACTIVATIONS.items()}
    functions["linear"] = lambda v: v
    x = x.double()
    for layer in layers:
        if quantized:
            codes, scale = quantize_rows(layer["W"])
            W = torch.from_numpy(codes).double()
            pre = (x @ W.T) * torch.from_numpy(scale).double()
            pre = pre + layer["b"].float().double()
        else:
            pre = x @ layer["W"].T + layer["b"]
        x = functions[layer["act"]](pre)
    return x


def decoder_means(
    layers: list[dict], z: torch.Tensor, quantized: bool = False
) -> torch.Tensor:
    """Pixel means sigmoid(logits) (B, D) of codes z (B, L)."""
    return torch.sigmoid(run_layers(layers, z, quantized))


def layer_arrays(prefix: str, layers: list[dict]) -> tuple[list, dict]:
    """Layer shapes for the page, and the arrays `pack` ships for them."""
    shapes, arrays = [], {}
    for i, layer in enumerate(layers):
        codes, scale = quantize_rows(layer["W"])
        shapes.append(
            {"out": codes.shape[0], "in": codes.shape[1], "act": layer["act"]}
        )
        arrays[f"{prefix}{i}.codes"] = codes.ravel()
        arrays[f"{prefix}{i}.scale"] = scale
        arrays[f"{prefix}{i}.bias"] = layer["b"].float().numpy()
    return shapes, arrays


def _bytes_of(name: str, array: np.ndarray) -> bytes:
    """Little-endian bytes; int16 as a low-byte plane, then a high one."""
    if array.dtype == np.int16:
        pairs = array.astype("<i2").view(np.uint8).reshape(-1, 2)
        return pairs[:, 0].tobytes() + pairs[:, 1].tobytes()
    if array.dtype in (np.float32, np.int8, np.uint8):
        return array.astype(array.dtype.newbyteorder("<")).tobytes()
    raise TypeError(
        f"pack ships int16, float32, int8 and uint8 arrays; "
        f"{name} is {array.dtype}"
    )


def pack(arrays: dict[str, np.ndarray]) -> dict:
    """Named 1-D arrays -> {"parts", "size", "text"} for the page.

    The byte planes of int16 codes deflate better than interleaved bytes;
    the whole is deflated (zlib) and written in base 85.
    """
    parts, chunks = [], []
    for name, array in arrays.items():
        array = np.ascontiguousarray(array)
        chunks.append(_bytes_of(name, array))
        parts.append([name, array.dtype.name, int(array.size)])
    payload = zlib.compress(b"".join(chunks), 9)
    size = len(payload)
    encoded = base64.b85encode(payload + bytes(-size % 4))
    return {
        "parts": parts,
        "size": size,
        "text": encoded.translate(_SAFE).decode("ascii"),
    }


def unpack(packed: dict) -> dict[str, np.ndarray]:
    """The inverse of `pack` (what the page's `unpack` does)."""
    text = (
        packed["text"].encode().translate(bytes.maketrans(b".,:[]", b"&<>*|"))
    )
    data = zlib.decompress(base64.b85decode(text)[: packed["size"]])
    arrays, offset = {}, 0
    for name, dtype, n in packed["parts"]:
        width = np.dtype(dtype).itemsize
        chunk = np.frombuffer(data[offset : offset + n * width], np.uint8)
        if dtype == "int16":
            chunk = np.stack([chunk[:n], chunk[n:]], axis=1).ravel()
        arrays[name] = chunk.view(np.dtype(dtype).newbyteorder("<"))
        offset += n * width
    return arrays


def fixed_noise(
    latent_dim: int, draws: int = DRAWS, seed: int = NOISE_SEED
) -> torch.Tensor:
    """The page's fixed eps ~ N(0, I), (draws, L) in float32."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(draws, latent_dim, generator=generator)


def _neg_elbo(x, mu, logvar, decode_logits, eps) -> torch.Tensor:
    """KL + Bernoulli cross-entropy averaged over z_k = mu + sigma eps_k."""
    z = mu[:, None] + torch.exp(0.5 * logvar)[:, None] * eps  # (B, K, L)
    logits = decode_logits(z.flatten(0, 1))  # (B * K, D)
    recon = bernoulli_nll(logits, x.repeat_interleave(len(eps), 0))
    per_draw = recon.view(len(x), len(eps))
    return gaussian_kl(mu, logvar) + per_draw.mean(dim=1)


@torch.no_grad()
def fixed_noise_scores(
    model: VAE, x: torch.Tensor, eps: torch.Tensor, exported: bool = False
) -> torch.Tensor:
    """-ELBO of images x (B, C, H, W) with the fixed draws eps (K, L): (B,).

    KL(q(z|x) || p(z)) exactly, plus the Bernoulli cross-entropy averaged
    over z_k = mu + sigma * eps_k: a repeatable estimate of the bound.
    exported=True computes it as the page does, with its int16 weights.
    """
    model.eval()
    if exported:
        encoder, decoder = encoder_layers(model), decoder_layers(model)
        x = model.flatten(x).double().cpu()
        mu, logvar = run_layers(encoder, x, True).chunk(2, dim=1)
        return _neg_elbo(
            x, mu, logvar, lambda z: run_layers(decoder, z, True), eps.double()
        )
    device = next(model.parameters()).device
    x = model.flatten(x.to(device))
    mu, logvar = model.encode(x)
    return _neg_elbo(
        x, mu, logvar, model.decode_logits, eps.to(device, mu.dtype)
    )


def score_quantiles(
    scores: torch.Tensor, points: int = REFERENCE_POINTS
) -> np.ndarray:
    """`points` evenly spaced order statistics of scores (N,), float32."""
    ordered = torch.sort(scores.double().cpu()).values
    ranks = torch.round(torch.linspace(0, len(ordered) - 1, points)).long()
    return ordered[ranks].float().numpy()


def percent_more_typical(score: float, quantiles: np.ndarray) -> float:
    """Share (%) of the reference with a higher -ELBO.

    The page's 'more typical than P % of test digits'.
    """
    above = np.asarray(quantiles, np.float64) > float(score)  # as the page
    return 100.0 * float(above.sum()) / len(quantiles)
