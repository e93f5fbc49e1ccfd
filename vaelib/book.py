"""The models the chapters share: trained once, loaded everywhere else.

`models()` lists every cached model a chapter loads. `python -m vaelib` trains
the ones not cached yet, several at a time: on a CPU, one single-threaded
process per core trains these small MLPs faster than one process using every
core (`bench/parallel_models.py` measures by how much). `python -m vaelib
--list` says which are cached.
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

# LIKELIHOODS: the likelihoods chapter compares all of them
from .config import LIKELIHOODS, VAEConfig
from .data import Splits, load_mnist, without_labels

# every comparison of designs trains each one with these seeds: mean ± sd
SEEDS = (0, 1, 2)
# most of the book's models train for a fifth of the recipe's epochs
SHORT_EPOCHS = 12
# the design the book grew from (BN + dropout, plateau LR), short budget
SEED = VAEConfig(epochs=SHORT_EPOCHS)
# the book's recipe at latent 2 (see the appendix "How fast is this?")
RECIPE = VAEConfig.recommended()
# the latent sizes the training and latent-space chapters compare (short run)
LATENT_SIZES = (2, 10, 20)
# the latent sizes of the full-budget recipe models later chapters load
RECIPE_LATENTS = (2, 20)
BETAS = (0.1, 0.5, 1.0, 2.0, 4.0, 8.0)  # the beta-VAE chapter's sweep
# latent size of the sweep: room for some dimensions to switch off
SWEEP_LATENT = 10
# the sweep's beta whose collapsed dimensions the beta-VAE chapter revives
COLLAPSE_BETA = 4.0
FREE_BITS = 0.5  # nats per dimension the free-bits mitigation leaves free
# the evaluation chapter's flow posterior: IAF steps on the recipe models
FLOW_STEPS = 4
# mixture components of the beta-VAE chapter's learned priors (MoG, Vamp)
PRIOR_COMPONENTS = 100
LEARNED_PRIORS = ("mog", "vamp")
# the beta-TCVAE's weight on the total correlation: the sweep's
# COLLAPSE_BETA, so it can be set beside the beta-VAE with that beta
TC_WEIGHT = COLLAPSE_BETA
# epochs of the KL warm-up mitigation (half the run)
KL_WARMUP = SHORT_EPOCHS // 2
# the applications chapter trains a model that never saw this digit
HELD_OUT_DIGIT = 8
CONDITIONAL_LATENT = 2  # the conditional VAE's z only has to carry style
# the training chapter's leak demonstration overfits this many images ...
LEAK_IMAGES = 2000
LEAK_EPOCHS = 80  # ... for this many epochs at a constant learning rate
LEAK_SET = 500  # test images per evaluation set in the leak demonstration
# "still falling" at the end of a run: the mean validation loss of its last
# this many epochs is below that of the same number before them (one epoch's
# loss moves up and down more than the trend)
TREND_EPOCHS = 5
# the evaluation chapter's importance-sample counts k
IWAE_SAMPLES = (1, 10, 100, 1000)
IWAE_IMAGES = 1000  # test images the chapter's IWAE estimates average over
# the evaluation chapter's inference gaps: each image's Gaussian refined with
# the decoder frozen for this many Adam steps ...
REFINE_STEPS = 100
REFINE_LR = 0.05  # ... from this step size, falling to 0 on a cosine ...
REFINE_SAMPLES = 8  # ... with this many z samples per step
GAP_ELBO_SAMPLES = 100  # z samples per image when the gaps' ELBOs are scored
# importance samples per image of the log p(x) the approximation gap uses
GAP_IWAE_SAMPLES = 5000
# importance samples per image when the ELBO gap is compared across seeds
GAP_SAMPLES = 100
# validation images whose inference gaps are compared across seeds
GAP_SEED_IMAGES = 200
# the architecture chapter trains on this many images with mixed loss
# reductions ...
MIXED_IMAGES = 10_000
MIXED_EPOCHS = 3  # ... for this many epochs
KNN_K = 5  # neighbours that vote in the k-NN classifiers on latent codes
# conditional samples per requested digit that the k-NN judge classifies
JUDGED_PER_DIGIT = 500
# generated images checked for memorisation in the latent-space chapter
MEMORY_SAMPLES = 1000
# sliders of the applications chapter's drawing explorer (its most active
# dimensions)
EXPLORER_SLIDERS = 6
# each book page that embeds an explorer stays below this size, figures
# included
PAGE_BYTES = 1_500_000
# the beta-VAE chapter's traversals sweep -LIMIT..LIMIT prior standard
# deviations ...
TRAVERSAL_LIMIT = 2.5
TRAVERSAL_STEPS = 9  # ... in this many steps
# the beta-VAE chapter's pair plot: this many dimensions, this many digits
PAIR_DIMS = 4
PAIR_POINTS = 2000
# a prior draw is in a hole of the aggregate posterior when codes are rarer
# there than at all but this share of real codes ...
HOLE_LEVEL = 0.01
HOLE_DRAWS = 10_000  # ... judged on this many prior draws per model
# the factors measured from the images that the disentanglement scores use
# (height is left out: MNIST scaled nearly every digit to the same height)
SCORED_FACTORS = ("area", "width", "slant", "thickness")
MORPHO_EXAMPLES = 10  # digits per factor in the morphometrics figure
# axis range of the beta-VAE chapter's latent scatter plots
SCATTER_LIMIT = 4.0
# nats: a latent dimension with less KL than this carries (almost) nothing
COLLAPSED_KL = 0.01
# epoch-time ratios within this of 1 are read as no difference (runs vary by
# several %)
TIMING_NOISE = 0.1
# the likelihoods chapter's models: the recipe at this latent size, short
# budget
LIKELIHOOD_LATENT = 20
# logistics mixed per pixel by the discretized-logistic models
LOGISTIC_COMPONENTS = 2
# what the likelihoods chapter's best model must reach (IWAE) on 8-bit test
# digits
TARGET_BITS_PER_DIM = 1.55
# Published bits/dim on the 8-bit (dequantized) MNIST test set: (value, what
# the model is, bib key). Flows' numbers as printed in FFJORD's Table 2
# (Grathwohl et al., 2019), which lists Real NVP, Glow and MAF on MNIST without
# saying who ran them; FFJORD's 0.99 is its multiscale model. i-ResNet from
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
# the sigma-vs-beta run trains on this many images ...
EQUIVALENCE_IMAGES = 10_000
EQUIVALENCE_EPOCHS = 2  # ... for this many epochs
# ... once with this negligible Adam epsilon, once with the default
EQUIVALENCE_ADAM_EPS = 1e-12


def recipe(latent_dim: int = 2, **changes) -> VAEConfig:
    """The book's recipe at another latent size (or with other changes)."""
    return RECIPE.replace(latent_dim=latent_dim, **changes)


def ablation(batch_norm: bool, dropout: bool, seed: int = 0) -> VAEConfig:
    """The seed design without batch norm and/or dropout (the ablation)."""
    return SEED.replace(
        batch_norm=batch_norm,
        dropout=SEED.dropout if dropout else 0.0,
        seed=seed,
    )


def beta_vae(beta: float, **changes) -> VAEConfig:
    """One model of the beta sweep: the recipe at SWEEP_LATENT, short run."""
    return recipe(
        SWEEP_LATENT, epochs=SHORT_EPOCHS, beta=float(beta), **changes
    )


def mitigated(method: str, seed: int = 0) -> VAEConfig:
    """The sweep's COLLAPSE_BETA model with free_bits or kl_warmup."""
    if method == "free_bits":
        return beta_vae(COLLAPSE_BETA, free_bits=FREE_BITS, seed=seed)
    if method == "kl_warmup":
        return beta_vae(COLLAPSE_BETA, kl_warmup=KL_WARMUP, seed=seed)
    raise ValueError(
        f"method must be 'free_bits' or 'kl_warmup'; got {method!r}"
    )


def flow_model(latent_dim: int, **changes) -> VAEConfig:
    """The recipe at this latent size with an IAF posterior (FLOW_STEPS)."""
    return recipe(latent_dim, flow_steps=FLOW_STEPS, **changes)


def learned_prior(prior: str, seed: int = 0) -> VAEConfig:
    """The sweep's beta = 1 model with a learned prior ("mog" or "vamp")."""
    return beta_vae(
        1.0, prior=prior, prior_components=PRIOR_COMPONENTS, seed=seed
    )


def tc_vae(seed: int = 0) -> VAEConfig:
    """The sweep's beta = 1 model with the TC weighted TC_WEIGHT: beta-TCVAE.

    Only the total correlation is weighted up; the ELBO's other terms keep
    weight 1 (Chen et al., 2018).
    """
    return beta_vae(1.0, tc_penalty=TC_WEIGHT - 1.0, seed=seed)


def conditional(seed: int = 0) -> VAEConfig:
    """The applications chapter's conditional VAE (labels in, small latent)."""
    return recipe(
        CONDITIONAL_LATENT, epochs=SHORT_EPOCHS, num_classes=10, seed=seed
    )


def held_out(seed: int = 0) -> VAEConfig:
    """The applications chapter's latent-20 model at the short budget.

    Trained without HELD_OUT_DIGIT (see `BookModel.exclude`) and, as the
    control, on every digit.
    """
    return recipe(20, epochs=SHORT_EPOCHS, seed=seed)


def likelihood_model(likelihood: str, seed: int = 0) -> VAEConfig:
    """The likelihoods chapter's model with this p(x|z), short budget.

    The recipe at LIKELIHOOD_LATENT. The Bernoulli one is the applications
    chapter's all-digits control (the same config).
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
    """A Fashion-MNIST model (its own training split): reverse anomaly test."""
    return recipe(20, epochs=SHORT_EPOCHS)


@dataclass(frozen=True)
class BookModel:
    """A model some chapter loads: config, dataset and the classes left out."""

    name: str
    config: VAEConfig
    exclude: tuple[int, ...] = ()
    # or "FashionMNIST", split the same way (train / validation / test)
    dataset: str = "MNIST"

    def splits(self, mnist: Splits | None = None) -> Splits:
        """The data it trains on (`mnist`: MNIST's splits, if given)."""
        if self.dataset != "MNIST":
            return load_mnist(self.config.val_size, name=self.dataset)
        mnist = (
            mnist if mnist is not None else load_mnist(self.config.val_size)
        )
        return without_labels(mnist, self.exclude) if self.exclude else mnist

    @property
    def cost(self) -> float:
        """Rough training time in full-MNIST recipe epochs.

        Batch norm and dropout cost about 1.4x.
        """
        per_epoch = (
            1.4 if self.config.batch_norm or self.config.dropout else 1.0
        )
        # wider output layers, dearer losses (~1.7x; 4x mixed)
        if self.config.likelihood != "bernoulli":
            per_epoch = 4.0 if self.config.components > 1 else 1.7
        # flow steps 1.4x; a VampPrior encodes its pseudo-inputs and the
        # TC penalty compares every pair in a batch (~1.9x each)
        per_epoch *= 1.4 if self.config.flow_steps else 1.0
        if self.config.prior == "vamp" or self.config.tc_penalty:
            per_epoch *= 1.9
        return self.config.epochs * per_epoch


def models() -> list[BookModel]:
    """Every cached model the chapters load, in the book's order."""
    # the seed design itself is the first of them
    entries = [
        BookModel(
            "seed"
            if (bn, do, s) == (True, True, 0)
            else f"ablation-bn{int(bn)}-dropout{int(do)}-seed{s}",
            ablation(bn, do, s),
        )
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
    # the latent sizes compared at the short budget; two of them come from
    # the beta sweep and the held-out control below (the same configs, so
    # the same cached models)
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
    # the flow posterior at the short budget, beside the Gaussian runs of
    # the same budget; every seed at the largest latent size, for the seed
    # check (its Gaussian runs are the held-out controls' configs)
    entries += [
        BookModel(
            f"iaf-latent{n}-short-seed{s}",
            flow_model(n, epochs=SHORT_EPOCHS, seed=s),
        )
        for n in RECIPE_LATENTS
        for s in (SEEDS if n == max(RECIPE_LATENTS) else SEEDS[:1])
    ]
    entries += [
        BookModel(f"{prior}-prior-seed{s}", learned_prior(prior, s))
        for prior in LEARNED_PRIORS
        for s in SEEDS
    ]
    entries += [BookModel(f"tcvae-seed{s}", tc_vae(s)) for s in SEEDS]
    entries += [
        BookModel(f"conditional-seed{s}", conditional(s)) for s in SEEDS
    ]
    for s in SEEDS:
        # same budget, every digit: the control
        entries += [
            BookModel(
                f"without-{HELD_OUT_DIGIT}-seed{s}",
                held_out(s),
                (HELD_OUT_DIGIT,),
            ),
            BookModel(f"all-digits-short-seed{s}", held_out(s)),
        ]
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
    """CPU cores this process may use: affinity, capped by a cgroup quota."""
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
    """Train (or load) one model with `threads` threads: (name, s, trained)."""
    entry, cache_dir, threads = job
    torch.set_num_threads(threads)
    tic = time.perf_counter()
    _, result = train_or_load(
        entry.config, entry.splits(), cache_dir, progress=False
    )
    return entry.name, time.perf_counter() - tic, result.trained


def cached_status(
    entries: list[BookModel] | None = None,
    cache_dir: str | Path | None = None,
) -> list[tuple[BookModel, Path, bool]]:
    """(model, its cache folder, whether it is cached and intact) per entry."""
    entries = models() if entries is None else entries
    mnist, rows = {}, []
    for entry in entries:
        size = entry.config.val_size
        if entry.dataset == "MNIST" and size not in mnist:
            mnist[size] = load_mnist(size)
        own = mnist.get(size) if entry.dataset == "MNIST" else None
        run_dir = run_dir_for(entry.config, entry.splits(own), cache_dir)
        # absent, unfinished or damaged all count as not cached
        rows.append((entry, run_dir, is_cached(run_dir)))
    return rows


def train_missing(
    entries: list[BookModel] | None = None,
    jobs: int | None = None,
    cache_dir: str | Path | None = None,
    report=None,
) -> list[tuple[str, float, bool]]:
    """Train every entry not cached yet (see `train_entries`)."""
    rows = cached_status(entries, cache_dir)
    missing = [entry for entry, _, cached in rows if not cached]
    return train_entries(missing, jobs, cache_dir, report)


def train_entries(
    entries: list[BookModel],
    jobs: int | None = None,
    cache_dir: str | Path | None = None,
    report=None,
) -> list[tuple[str, float, bool]]:
    """Train these entries, longest first, `jobs` at a time.

    Returns (name, seconds, trained) per model. report(k, n, name, seconds,
    trained) is called as each model finishes. A model another process trained
    meanwhile is loaded, not trained again (`trained` is False).
    """
    missing = sorted(entries, key=lambda e: -e.cost)
    cores = available_cores()
    # one GPU: one model at a time
    default = 1 if torch.cuda.is_available() else cores
    jobs = max(1, min(jobs or default, len(missing) or 1))
    folder = None if cache_dir is None else str(cache_dir)
    work = [(entry, folder, max(1, cores // jobs)) for entry in missing]
    done = []

    def collect(results) -> None:
        for name, seconds, trained in results:
            done.append((name, seconds, trained))
            if report is not None:
                report(len(done), len(work), name, seconds, trained)

    if jobs == 1:
        collect(map(_train_one, work))
        return done
    # spawn: no forked OpenMP state
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:
        collect(pool.imap_unordered(_train_one, work))
        pool.close()
        pool.join()
    return done


def duration(seconds: float) -> str:
    """A duration for people: '45 s', '12 min', '1 h 05 min'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"


class Progress:
    """One line per finished model: a bar over the work, k of N, time left.

    The work is measured in `BookModel.cost` (recipe epochs), so the estimate
    of the time left weighs a 60-epoch model five times a 12-epoch one.
    """

    WIDTH = 24

    def __init__(self, missing: list[BookModel], clock=time.perf_counter):
        self.cost = {entry.name: entry.cost for entry in missing}
        self.total = sum(self.cost.values()) or 1.0
        self.done, self.clock, self.start = 0.0, clock, clock()

    def line(self, k: int, n: int, name: str, seconds: float, trained: bool):
        """The line printed when model `name` (k of n) has finished."""
        self.done += self.cost.get(name, 0.0)
        fraction = min(1.0, self.done / self.total)
        filled = round(self.WIDTH * fraction)
        bar = "#" * filled + "." * (self.WIDTH - filled)
        elapsed = self.clock() - self.start
        what = "trained" if trained else "loaded (another process trained it)"
        if k == n:
            left = "done"
        else:
            left = f"about {duration(elapsed / fraction - elapsed)} left"
        return (
            f"[{bar}] {fraction:4.0%} {k}/{n} {what} {name} in "
            f"{duration(seconds)}; {left}"
        )


def list_models(
    entries: list[BookModel] | None = None,
    cache_dir: str | Path | None = None,
) -> str:
    """A table of the book's models: name, dataset, cached or not, folder."""
    rows = cached_status(entries, cache_dir)
    lines = [f"{'model':30s} {'data':12s} {'cached':6s} folder"]
    for entry, run_dir, cached in rows:
        mark = "yes" if cached else "no"
        lines.append(
            f"{entry.name:30s} {entry.dataset:12s} {mark:6s} {run_dir.name}"
        )
    missing = [entry for entry, _, cached in rows if not cached]
    folder = rows[0][1].parent if rows else cache_dir
    lines.append(
        f"{len(rows) - len(missing)} of {len(rows)} cached in {folder}; "
        + (
            f"`python -m vaelib` trains the other {len(missing)} "
            f"({sum(e.cost for e in missing):.0f} recipe epochs of work)."
            if missing
            else "nothing to train."
        )
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command line: train the book's models that are not cached yet."""
    parser = argparse.ArgumentParser(
        prog="python -m vaelib", description=main.__doc__
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="models trained at once (default: one per CPU core; 1 on a GPU)",
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="say which models are cached, train nothing",
    )
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        parser.error(f"--jobs must be at least 1; got {args.jobs}")
    if args.list:
        print(list_models())
        return
    tic = time.perf_counter()
    missing = [entry for entry, _, cached in cached_status() if not cached]
    if missing:
        work = sum(entry.cost for entry in missing)
        print(
            f"Training {len(missing)} of {len(models())} book models "
            f"({work:.0f} recipe epochs of work); one line as each ends.",
            flush=True,
        )
    progress = Progress(missing)

    def report(k, n, name, seconds, trained) -> None:
        print(progress.line(k, n, name, seconds, trained), flush=True)

    done = train_entries(missing, jobs=args.jobs, report=report)
    trained = sum(t for _, _, t in done)
    print(
        f"{trained} of {len(models())} book models trained in "
        f"{duration(time.perf_counter() - tic)} (the rest were cached)"
    )
