"""The models the chapters share: each is trained once per build and loaded everywhere else.

`models()` lists every cached model a chapter loads. `python -m vaelib` trains the ones not
cached yet, several at a time: on a CPU, one single-threaded process per core trains these small
MLPs faster than one process using every core (`bench/parallel_models.py` measures by how much).
`make models` runs it before the book and the tests.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .cache import is_cached, run_dir_for, train_or_load
from .config import (
    LIKELIHOODS,
    VAEConfig,
)  # LIKELIHOODS: the likelihoods chapter compares all of them
from .data import Splits, load_mnist, without_labels

SEEDS = (
    0,
    1,
    2,
)  # every comparison of designs trains each one with these seeds and shows mean ± sd
SHORT_EPOCHS = (
    12  # most of the book's models train for a fifth of the recipe's epochs
)
SEED = VAEConfig(
    epochs=SHORT_EPOCHS
)  # the design the book grew from (BN + dropout, plateau LR), short budget
RECIPE = (
    VAEConfig.recommended()
)  # the book's recipe at latent 2 (see the appendix "How fast is this?")
LATENT_SIZES = (
    2,
    10,
    20,
)  # the latent sizes the training and latent-space chapters compare (short budget)
RECIPE_LATENTS = (
    2,
    20,
)  # the latent sizes of the full-budget recipe models later chapters load
BETAS = (0.1, 0.5, 1.0, 2.0, 4.0, 8.0)  # the beta-VAE chapter's sweep
SWEEP_LATENT = (
    10  # latent size of the sweep: room for some dimensions to switch off
)
COLLAPSE_BETA = 4.0  # the sweep's beta whose collapsed dimensions the evaluation chapter revives
FREE_BITS = 0.5  # nats per dimension the free-bits mitigation leaves free
KL_WARMUP = (
    SHORT_EPOCHS // 2
)  # epochs of the KL warm-up mitigation (half the run)
HELD_OUT_DIGIT = (
    8  # the applications chapter trains a model that never saw this digit
)
CONDITIONAL_LATENT = 2  # the conditional VAE's z only has to carry style
LEAK_IMAGES = 2000  # the training chapter's leak demonstration overfits this many training images ...
LEAK_EPOCHS = 80  # ... for this many epochs at a constant learning rate
LEAK_SET = 500  # test images per evaluation set in the leak demonstration
IWAE_SAMPLES = (
    1,
    10,
    100,
    1000,
)  # the evaluation chapter's importance-sample counts k
IWAE_IMAGES = 1000  # test images the chapter's IWAE estimates average over
GAP_SAMPLES = 100  # importance samples per image when the ELBO gap is compared across seeds
MIXED_IMAGES = 10_000  # the architecture chapter trains on this many images with mixed loss reductions ...
MIXED_EPOCHS = 3  # ... for this many epochs
KNN_K = 5  # neighbours that vote in the k-NN classifiers on latent codes
JUDGED_PER_DIGIT = 500  # conditional samples per requested digit that the k-NN judge classifies
MEMORY_SAMPLES = 1000  # generated images checked for memorisation in the latent-space chapter
EXPLORER_SLIDERS = 6  # sliders of the applications chapter's drawing explorer: its most active dimensions
PAGE_BYTES = 1_500_000  # each book page that embeds an explorer stays below this size, figures included
TRAVERSAL_LIMIT = 2.5  # the beta-VAE chapter's traversals sweep -LIMIT..LIMIT prior standard deviations ...
TRAVERSAL_STEPS = 9  # ... in this many steps
SCATTER_LIMIT = (
    4.0  # axis range of the beta-VAE chapter's latent scatter plots
)
COLLAPSED_KL = 0.01  # nats: a latent dimension with less KL than this carries (almost) nothing
TIMING_NOISE = 0.1  # epoch-time ratios within this of 1 are read as no difference (runs vary by several %)
LIKELIHOOD_LATENT = 20  # the likelihoods chapter's models: the recipe at this latent size, short budget
LOGISTIC_COMPONENTS = (
    2  # logistics mixed per pixel by the discretized-logistic models
)
TARGET_BITS_PER_DIM = 1.55  # what the likelihoods chapter's best model must reach (IWAE) on 8-bit test digits
# Published bits/dim on the 8-bit (dequantized) MNIST test set: (value, what the model is, bib key).
# Flows' numbers as printed in FFJORD's Table 2 (Grathwohl et al., 2019), which lists Real NVP, Glow
# and MAF on MNIST without saying who ran them; FFJORD's 0.99 is its multiscale model. i-ResNet from
# its own paper (Behrmann et al., 2019).
PUBLISHED_BITS_PER_DIM = {
    "FFJORD (multiscale)": (
        0.99,
        "flow, FFJORD's Table 2",
        "grathwohl2019ffjord",
    ),
    "Glow": (1.05, "flow, FFJORD's Table 2", "kingma2018glow"),
    "Real NVP": (1.06, "flow, FFJORD's Table 2", "dinh2017density"),
    "i-ResNet": (1.06, "flow, its own paper", "behrmann2019invertible"),
    "MAF": (1.89, "flow, FFJORD's Table 2", "papamakarios2017masked"),
}
EQUIVALENCE_IMAGES = (
    10_000  # the sigma-vs-beta run trains on this many images ...
)
EQUIVALENCE_EPOCHS = 2  # ... for this many epochs
EQUIVALENCE_ADAM_EPS = (
    1e-12  # ... once with this negligible Adam epsilon, once with the default
)


def recipe(latent_dim: int = 2, **changes) -> VAEConfig:
    """The book's recipe at another latent size (or with other changes)."""
    return RECIPE.replace(latent_dim=latent_dim, **changes)


def ablation(batch_norm: bool, dropout: bool, seed: int = 0) -> VAEConfig:
    """The seed design with batch norm and/or dropout switched off (the architecture chapter's ablation)."""
    return SEED.replace(
        batch_norm=batch_norm,
        dropout=SEED.dropout if dropout else 0.0,
        seed=seed,
    )


def beta_vae(beta: float, **changes) -> VAEConfig:
    """One model of the beta sweep: the recipe at latent SWEEP_LATENT, SHORT_EPOCHS epochs."""
    return recipe(
        SWEEP_LATENT, epochs=SHORT_EPOCHS, beta=float(beta), **changes
    )


def mitigated(method: str, seed: int = 0) -> VAEConfig:
    """The sweep's COLLAPSE_BETA model trained with a collapse mitigation: "free_bits" or "kl_warmup"."""
    if method == "free_bits":
        return beta_vae(COLLAPSE_BETA, free_bits=FREE_BITS, seed=seed)
    if method == "kl_warmup":
        return beta_vae(COLLAPSE_BETA, kl_warmup=KL_WARMUP, seed=seed)
    raise ValueError(
        f"method must be 'free_bits' or 'kl_warmup'; got {method!r}"
    )


def conditional(seed: int = 0) -> VAEConfig:
    """The conditional VAE of the applications chapter (labels in, latent CONDITIONAL_LATENT)."""
    return recipe(
        CONDITIONAL_LATENT, epochs=SHORT_EPOCHS, num_classes=10, seed=seed
    )


def held_out(seed: int = 0) -> VAEConfig:
    """The applications chapter's latent-20 model at the short budget: trained without HELD_OUT_DIGIT
    (see `BookModel.exclude`) and, as the control, on every digit."""
    return recipe(20, epochs=SHORT_EPOCHS, seed=seed)


def likelihood_model(likelihood: str, seed: int = 0) -> VAEConfig:
    """The likelihoods chapter's model with this p(x|z): the recipe at LIKELIHOOD_LATENT, short budget.

    The Bernoulli one is the applications chapter's all-digits control (the same config).
    """
    components = (
        LOGISTIC_COMPONENTS if likelihood == "discretized_logistic" else 1
    )
    return recipe(
        LIKELIHOOD_LATENT,
        epochs=SHORT_EPOCHS,
        likelihood=likelihood,
        components=components,
        seed=seed,
    )


def fashion() -> VAEConfig:
    """A model of Fashion-MNIST (its own training split) for the reverse anomaly test."""
    return recipe(20, epochs=SHORT_EPOCHS)


@dataclass(frozen=True)
class BookModel:
    """A model some chapter loads: its config, its dataset and which classes its training data leaves out."""

    name: str
    config: VAEConfig
    exclude: tuple[int, ...] = ()
    dataset: str = "MNIST"  # or "FashionMNIST", split the same way (train / validation / test)

    def splits(self, mnist: Splits | None = None) -> Splits:
        """The data this model trains on (`mnist`: the full MNIST splits, if already loaded)."""
        if self.dataset != "MNIST":
            return load_mnist(self.config.val_size, name=self.dataset)
        mnist = (
            mnist if mnist is not None else load_mnist(self.config.val_size)
        )
        return without_labels(mnist, self.exclude) if self.exclude else mnist

    @property
    def cost(self) -> float:
        """Rough training time in full-MNIST recipe epochs (batch norm and dropout cost ~1.4x)."""
        per_epoch = (
            1.4 if self.config.batch_norm or self.config.dropout else 1.0
        )
        if (
            self.config.likelihood != "bernoulli"
        ):  # wider output layers, dearer losses (~1.7x; 4x mixed)
            per_epoch = 4.0 if self.config.components > 1 else 1.7
        return self.config.epochs * per_epoch


def models() -> list[BookModel]:
    """Every cached model the chapters load, in the order the book first uses them."""
    entries = [
        BookModel(
            "seed"
            if (bn, do, s) == (True, True, 0)
            else f"ablation-bn{int(bn)}-dropout{int(do)}-seed{s}",
            ablation(bn, do, s),
        )  # the seed design itself is the first of them
        for s in SEEDS
        for bn, do in (
            (True, True),
            (True, False),
            (False, True),
            (False, False),
        )
    ]
    entries += [
        BookModel(f"recipe-latent{n}", recipe(n)) for n in RECIPE_LATENTS
    ]
    # the latent sizes compared at the short budget; two of them come from the beta sweep and the
    # held-out control below (the same configs, so the same cached models)
    entries += [
        BookModel(
            f"recipe-latent{n}-short-seed{s}",
            recipe(n, epochs=SHORT_EPOCHS, seed=s),
        )
        for n in LATENT_SIZES
        if n not in (SWEEP_LATENT, held_out().latent_dim)
        for s in SEEDS
    ]
    entries += [
        BookModel(f"beta{b:g}-seed{s}", beta_vae(b, seed=s))
        for b in BETAS
        for s in SEEDS
    ]
    entries += [
        BookModel(f"{m.replace('_', '-')}-seed{s}", mitigated(m, s))
        for m in ("free_bits", "kl_warmup")
        for s in SEEDS
    ]
    entries += [
        BookModel(f"conditional-seed{s}", conditional(s)) for s in SEEDS
    ]
    for s in SEEDS:
        entries += [
            BookModel(
                f"without-{HELD_OUT_DIGIT}-seed{s}",
                held_out(s),
                (HELD_OUT_DIGIT,),
            ),
            BookModel(f"all-digits-short-seed{s}", held_out(s)),
        ]  # same budget, every digit: the control
    entries += [
        BookModel(
            f"{name.replace('_', '-')}-seed{s}", likelihood_model(name, s)
        )
        for name in LIKELIHOODS
        if name != "bernoulli"
        for s in SEEDS
    ]
    entries += [BookModel("fashion", fashion(), dataset="FashionMNIST")]
    return entries


def available_cores() -> int:
    """CPU cores this process may use: its affinity mask, capped by a cgroup (container) CPU quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def _train_one(
    job: tuple[BookModel, str | None, int],
) -> tuple[str, float, bool]:
    """Train (or load) one model in a worker process limited to `threads` threads: (name, s, trained)."""
    entry, cache_dir, threads = job
    torch.set_num_threads(threads)
    tic = time.perf_counter()
    _, result = train_or_load(
        entry.config, entry.splits(), cache_dir, progress=False
    )
    return entry.name, time.perf_counter() - tic, result.trained


def train_missing(
    entries: list[BookModel] | None = None,
    jobs: int | None = None,
    cache_dir: str | Path | None = None,
    report=None,
) -> list[tuple[str, float, bool]]:
    """Train every entry not cached yet, longest first, `jobs` at a time; (name, seconds, trained) per model.

    report(k, n, name, seconds, trained) is called as each model finishes. A model another process
    trained meanwhile is loaded, not trained again (`trained` is False).
    """
    entries = models() if entries is None else entries
    mnist, missing = {}, []
    for entry in entries:
        if entry.dataset == "MNIST" and entry.config.val_size not in mnist:
            mnist[entry.config.val_size] = load_mnist(entry.config.val_size)
        splits = entry.splits(
            mnist.get(entry.config.val_size)
            if entry.dataset == "MNIST"
            else None
        )
        if not is_cached(
            run_dir_for(entry.config, splits, cache_dir)
        ):  # absent, unfinished or damaged
            missing.append(entry)
    missing.sort(key=lambda e: -e.cost)
    cores = available_cores()
    default = (
        1 if torch.cuda.is_available() else cores
    )  # one GPU: one model at a time
    jobs = max(1, min(jobs or default, len(missing) or 1))
    work = [
        (
            entry,
            None if cache_dir is None else str(cache_dir),
            max(1, cores // jobs),
        )
        for entry in missing
    ]
    done = []

    def collect(results) -> None:
        for name, seconds, trained in results:
            done.append((name, seconds, trained))
            if report is not None:
                report(len(done), len(work), name, seconds, trained)

    if jobs == 1:
        collect(map(_train_one, work))
        return done
    with multiprocessing.get_context("spawn").Pool(
        jobs
    ) as pool:  # spawn: no forked OpenMP state
        collect(pool.imap_unordered(_train_one, work))
        pool.close()
        pool.join()
    return done


def main(argv: list[str] | None = None) -> None:
    """Command line: train the book's models that are not cached yet."""
    parser = argparse.ArgumentParser(
        prog="python -m vaelib", description=main.__doc__
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="models trained at once (default: one per CPU core, or 1 with a GPU)",
    )
    parser.add_argument(
        "--list", action="store_true", help="print the models and exit"
    )
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        parser.error(f"--jobs must be at least 1; got {args.jobs}")
    if args.list:
        for entry in models():
            print(
                f"{entry.name:24s} {entry.dataset:12s} excluded {list(entry.exclude)!s:5s} {entry.config}"
            )
        return
    tic = time.perf_counter()

    def report(
        k: int, n: int, name: str, seconds: float, trained: bool
    ) -> None:
        what = "trained" if trained else "loaded (another process trained it)"
        print(f"[{k}/{n}] {what} {name} in {seconds:.1f} s", flush=True)

    done = train_missing(jobs=args.jobs, report=report)
    trained = sum(t for _, _, t in done)
    print(
        f"{trained} of {len(models())} book models trained in {time.perf_counter() - tic:.0f} s "
        f"(the rest were cached)"
    )
