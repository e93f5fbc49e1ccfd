"""vaelib: the small library behind the vae-book chapters."""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _installed_version

from . import (
    aggregate,
    anomaly,
    book,
    compare,
    disentangle,
    drawing,
    gaps,
    explorer,
    export,
    flows,
    likelihoods,
    losses,
    morpho,
    priors,
    toy,
)
from .anomaly import auroc, roc_curve
from .cache import (
    CacheError,
    default_cache_dir,
    load_run,
    run_dir_for,
    train_or_load,
)
from .checkpoint import (
    CheckpointError,
    CheckpointWriteError,
    load_checkpoint,
    save_checkpoint,
)
from .config import VAEConfig, resolve_device
from .data import (
    DataCorruptError,
    DataNotFoundError,
    Split,
    Splits,
    load_mnist,
    load_test,
    without_labels,
)
from .evaluate import (
    active_units,
    bernoulli_entropy_floor,
    bits_per_dim,
    evaluate,
    iwae_bound,
    log_prob_8bit,
    per_image_terms,
    posterior_stats,
)
from .explorer import LatentExplorer, explorer_html
from .latent import (
    interpolate,
    knn_accuracy,
    knn_predict,
    latent_means,
    nearest_neighbours,
    prior_grid,
    traversals,
)
from .losses import (
    LossTerms,
    bernoulli_nll,
    continuous_bernoulli_nll,
    discretized_logistic_nll,
    free_bits_kl,
    gaussian_kl,
    gaussian_nll,
    log_cb_normaliser,
    vae_loss,
)
from .model import (
    VAE,
    Posterior,
    VAEOutput,
    build_model,
    count_parameters,
    reparameterize,
    train_flops_per_image,
)
from .notebook import layer_table, show_source
from .plots import (
    plot_image_rows,
    plot_latent_scatter,
    plot_manifold,
    plot_generated,
    plot_reconstructions,
    plot_training_curves,
    show_images,
    use_book_theme,
)
from .repro import seed_everything
from .train import FitResult, TrainingDivergedError, fit

try:  # the one place the version lives is pyproject.toml
    __version__ = _installed_version("vaelib")
except PackageNotFoundError:  # imported from a checkout, not installed
    __version__ = "unknown"
