"""vaelib: the small library behind the vae-book chapters."""

from .cache import build_model, default_cache_dir, load_run, run_dir_for, train_or_load
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import VAEConfig, resolve_device
from .data import DataNotFoundError, Split, Splits, load_mnist
from .evaluate import evaluate, per_image_terms
from .losses import LossTerms, bernoulli_nll, gaussian_kl, vae_loss
from .model import VAE, VAEOutput, count_parameters, reparameterize
from .notebook import show_source
from .plots import (latent_means, plot_latent_scatter, plot_reconstructions, plot_samples,
                    plot_training_curves, show_images)
from .repro import seed_everything
from .train import FitResult, TrainingDivergedError, fit

__version__ = "0.1.0"
