"""Inverse autoregressive flow (IAF) posteriors (Kingma et al., 2016).

A diagonal Gaussian q(z|x) cannot lean or bend. An IAF step moves every
coordinate of z by an amount that depends on the coordinates before it,

    z_i <- g_i z_i + (1 - g_i) m_i,   (m, g) = MADE(z_{<i}, h),

so its Jacobian is triangular with diagonal g and log |det| = sum_i log g_i.
Stacking steps (reversing the order between them) gives a posterior with
correlations and skew, and log q(z|x) stays exact:

    log q(z_K | x) = log N(z_0; mu, sigma^2) - sum_t sum_i log g_ti.

h is a context vector from the encoder, so the flow adapts to the image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# hidden units of each step's MADE
FLOW_HIDDEN = 128
# added to the gate's pre-activation: sigmoid(2) = 0.88, so a new flow starts
# close to the identity (Kingma et al., 2016, section 4)
GATE_BIAS = 2.0


class MaskedLinear(nn.Linear):
    """A Linear layer whose weight is multiplied by a fixed 0/1 mask."""

    def __init__(self, n_in: int, n_out: int, mask: torch.Tensor):
        super().__init__(n_in, n_out)
        self.register_buffer("mask", mask.to(self.weight.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., n_in) -> (..., n_out), masked weights."""
        return F.linear(x, self.weight * self.mask, self.bias)


def made_masks(latent: int, hidden: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Masks (hidden, L) and (2L, hidden) of a one-hidden-layer MADE.

    Input i has degree i (1..L); hidden unit j degree 1 + j mod (L - 1); the
    two outputs of coordinate i (shift and gate) see hidden units of degree
    < i, so output i depends on inputs 1..i-1 only (Germain et al., 2015).
    """
    d_in = torch.arange(1, latent + 1)
    d_hidden = 1 + torch.arange(hidden) % max(1, latent - 1)
    d_out = d_in.repeat(2)
    return (
        d_hidden[:, None] >= d_in[None, :],
        d_out[:, None] > d_hidden[None, :],
    )


class IAFStep(nn.Module):
    """One IAF step: z (..., N, L), h (N, H) -> z', log g summed (..., N)."""

    def __init__(self, latent: int, context: int, hidden: int = FLOW_HIDDEN):
        super().__init__()
        to_hidden, to_out = made_masks(latent, hidden)
        self.inp = MaskedLinear(latent, hidden, to_hidden)
        self.context = nn.Linear(context, hidden)
        self.out = MaskedLinear(hidden, 2 * latent, to_out)

    def forward(
        self, z: torch.Tensor, h: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The moved z and sum_i log g_i, the step's log |det dz'/dz|."""
        a = F.elu(self.inp(z) + self.context(h))
        shift, gate = self.out(a).chunk(2, dim=-1)
        gate = gate + GATE_BIAS
        g = torch.sigmoid(gate)
        return g * z + (1 - g) * shift, F.logsigmoid(gate).sum(-1)


class IAF(nn.Module):
    """`steps` IAF steps, the order of z reversed between them."""

    def __init__(self, latent: int, context: int, steps: int):
        super().__init__()
        self.steps = nn.ModuleList(
            IAFStep(latent, context) for _ in range(steps)
        )

    def forward(
        self, z: torch.Tensor, h: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """z_0 (..., N, L), h (N, H) -> z_K, sum of log |det| (..., N)."""
        log_det = torch.zeros(z.shape[:-1], dtype=z.dtype, device=z.device)
        for t, step in enumerate(self.steps):
            if t:
                z = z.flip(-1)
            z, step_log_det = step(z, h)
            log_det = log_det + step_log_det
        if len(self.steps) % 2 == 0:
            # undo the last reversal's effect on the order
            z = z.flip(-1)
        return z, log_det
