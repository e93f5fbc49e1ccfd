"""Reproducibility: one call seeds every random number generator."""

from __future__ import annotations

import random

import numpy as np
import torch


def draw_on(generator: torch.Generator | None, device) -> torch.device:
    """Where to draw random numbers: the generator's device, else `device`.

    Drawing there and moving the result lets a CPU generator
    (`seed_everything` returns one) feed a model on a GPU, and gives the
    same numbers on either.
    """
    return generator.device if generator is not None else torch.device(device)


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices).

    Returns a CPU generator seeded the same.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds CUDA and MPS
    return torch.Generator().manual_seed(seed)
