"""The configurations chapters share, so that each model is trained once per build and reused."""

from __future__ import annotations

from .config import VAEConfig

SEED = VAEConfig(epochs=30)  # the design the book grew from (BN + dropout, plateau LR), 30 epochs
RECIPE = VAEConfig.recommended()  # the book's recipe at latent 2 (see the appendix "How fast is this?")
LATENT_SIZES = (2, 10, 20)  # the latent sizes the training and latent-space chapters compare


def recipe(latent_dim: int = 2, **changes) -> VAEConfig:
    """The book's recipe at another latent size (or with other changes)."""
    return RECIPE.replace(latent_dim=latent_dim, **changes)


def ablation(batch_norm: bool, dropout: bool) -> VAEConfig:
    """The seed design with batch norm and/or dropout switched off (the architecture chapter)."""
    return SEED.replace(batch_norm=batch_norm, dropout=SEED.dropout if dropout else 0.0)
