"""The models the chapters share: each is trained once per build and loaded everywhere else.

`models()` lists every cached model a chapter loads. `python -m vaelib` trains the ones not
cached yet, several at a time: on a CPU, one single-threaded process per core trains these small
MLPs faster than one process using every core (`bench/parallel_models.py` measures by how much).
`make models` runs it before the book and the tests.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .cache import run_dir_for, train_or_load
from .config import VAEConfig
from .data import Splits, load_mnist, load_test_splits, without_labels

SEED = VAEConfig(epochs=30)  # the design the book grew from (BN + dropout, plateau LR), 30 epochs
RECIPE = VAEConfig.recommended()  # the book's recipe at latent 2 (see the appendix "How fast is this?")
LATENT_SIZES = (2, 10, 20)  # the latent sizes the training and latent-space chapters compare
SHORT_EPOCHS = 12  # the later chapters' many models train for a fifth of the recipe's epochs
BETAS = (0.1, 0.5, 1.0, 2.0, 4.0, 8.0)  # the beta-VAE chapter's sweep
SWEEP_LATENT = 10  # latent size of the sweep: room for some dimensions to switch off
COLLAPSE_BETA = 4.0  # the sweep's beta whose collapsed dimensions the evaluation chapter revives
FREE_BITS = 0.5  # nats per dimension the free-bits mitigation leaves free
KL_WARMUP = SHORT_EPOCHS // 2  # epochs of the KL warm-up mitigation (half the run)
HELD_OUT_DIGIT = 8  # the applications chapter trains a model that never saw this digit
CONDITIONAL_LATENT = 2  # the conditional VAE's z only has to carry style
CEILINGS = {2: 140.0, 20: 100.0}  # test -ELBO the recipe must reach at these latent sizes within the book's budget
LEAK_IMAGES = 2000  # the training chapter's leak demonstration overfits this many training images ...
LEAK_EPOCHS = 80  # ... for this many epochs at a constant learning rate
IWAE_SAMPLES = (1, 10, 100, 1000)  # the evaluation chapter's importance-sample counts k
IWAE_IMAGES = 1000  # test images the chapter's IWAE estimates average over
COLLAPSED_KL = 0.01  # nats: a latent dimension with less KL than this carries (almost) nothing


def recipe(latent_dim: int = 2, **changes) -> VAEConfig:
    """The book's recipe at another latent size (or with other changes)."""
    return RECIPE.replace(latent_dim=latent_dim, **changes)


def ablation(batch_norm: bool, dropout: bool) -> VAEConfig:
    """The seed design with batch norm and/or dropout switched off (the architecture chapter)."""
    return SEED.replace(batch_norm=batch_norm, dropout=SEED.dropout if dropout else 0.0)


def beta_vae(beta: float, **changes) -> VAEConfig:
    """One model of the beta sweep: the recipe at latent SWEEP_LATENT, SHORT_EPOCHS epochs."""
    return recipe(SWEEP_LATENT, epochs=SHORT_EPOCHS, beta=float(beta), **changes)


def mitigated(method: str) -> VAEConfig:
    """The sweep's COLLAPSE_BETA model trained with a collapse mitigation: "free_bits" or "kl_warmup"."""
    if method == "free_bits":
        return beta_vae(COLLAPSE_BETA, free_bits=FREE_BITS)
    if method == "kl_warmup":
        return beta_vae(COLLAPSE_BETA, kl_warmup=KL_WARMUP)
    raise ValueError(f"method must be 'free_bits' or 'kl_warmup'; got {method!r}")


def conditional() -> VAEConfig:
    """The conditional VAE of the applications chapter (labels in, latent CONDITIONAL_LATENT)."""
    return recipe(CONDITIONAL_LATENT, epochs=SHORT_EPOCHS, num_classes=10)


def held_out() -> VAEConfig:
    """The applications chapter's latent-20 model at the short budget: trained without HELD_OUT_DIGIT
    (see `BookModel.exclude`) and, as the control, on every digit."""
    return recipe(20, epochs=SHORT_EPOCHS)


def fashion() -> VAEConfig:
    """A model of Fashion-MNIST (trained on 8k of its test images) for the reverse anomaly test."""
    return recipe(20, epochs=SHORT_EPOCHS)


@dataclass(frozen=True)
class BookModel:
    """A model some chapter loads: its config, its dataset and which classes its training data leaves out."""

    name: str
    config: VAEConfig
    exclude: tuple[int, ...] = ()
    dataset: str = "MNIST"  # or "FashionMNIST": carved from that dataset's test images (load_test_splits)

    def splits(self, mnist: Splits | None = None) -> Splits:
        """The data this model trains on (`mnist`: the full MNIST splits, if already loaded)."""
        if self.dataset != "MNIST":
            return load_test_splits(self.dataset)
        mnist = mnist if mnist is not None else load_mnist(self.config.val_size)
        return without_labels(mnist, self.exclude) if self.exclude else mnist

    @property
    def cost(self) -> float:
        """Rough training time in full-MNIST recipe epochs (batch norm and dropout cost ~1.4x)."""
        size = 1.0 if self.dataset == "MNIST" else 0.15
        return size * self.config.epochs * (1.4 if self.config.batch_norm or self.config.dropout else 1.0)


def models() -> list[BookModel]:
    """Every cached model the chapters load, in the order the book first uses them."""
    entries = [BookModel("seed", SEED)]
    entries += [BookModel(f"ablation-bn{int(bn)}-dropout{int(do)}", ablation(bn, do))
                for bn, do in ((True, False), (False, True), (False, False))]
    entries += [BookModel(f"recipe-latent{n}", recipe(n)) for n in LATENT_SIZES]
    entries += [BookModel(f"beta{b:g}", beta_vae(b)) for b in BETAS]
    entries += [BookModel("free-bits", mitigated("free_bits")), BookModel("kl-warmup", mitigated("kl_warmup")),
                BookModel("conditional", conditional()),
                BookModel(f"without-{HELD_OUT_DIGIT}", held_out(), (HELD_OUT_DIGIT,)),
                BookModel("all-digits-short", held_out()),  # the same budget, every digit: the control
                BookModel("fashion", fashion(), dataset="FashionMNIST")]
    return entries


def _train_one(job: tuple[BookModel, str | None, int]) -> tuple[str, float]:
    """Train (or load) one model in a worker process limited to `threads` threads."""
    entry, cache_dir, threads = job
    torch.set_num_threads(threads)
    tic = time.perf_counter()
    train_or_load(entry.config, entry.splits(), cache_dir, progress=False)
    return entry.name, time.perf_counter() - tic


def train_missing(entries: list[BookModel] | None = None, jobs: int | None = None,
                  cache_dir: str | Path | None = None) -> list[tuple[str, float]]:
    """Train every entry not cached yet, longest first, `jobs` at a time; (name, seconds) per model."""
    entries = models() if entries is None else entries
    mnist, missing = {}, []
    for entry in entries:
        if entry.dataset == "MNIST" and entry.config.val_size not in mnist:
            mnist[entry.config.val_size] = load_mnist(entry.config.val_size)
        splits = entry.splits(mnist.get(entry.config.val_size) if entry.dataset == "MNIST" else None)
        if not (run_dir_for(entry.config, splits, cache_dir) / "done.json").exists():
            missing.append(entry)
    missing.sort(key=lambda e: -e.cost)
    cores = os.cpu_count() or 1
    default = 1 if torch.cuda.is_available() else cores  # one GPU: one model at a time
    jobs = max(1, min(jobs or default, len(missing) or 1))
    work = [(entry, None if cache_dir is None else str(cache_dir), max(1, cores // jobs)) for entry in missing]
    if jobs == 1:
        return [_train_one(job) for job in work]
    with multiprocessing.get_context("spawn").Pool(jobs) as pool:  # spawn: no forked OpenMP state
        done = list(pool.imap_unordered(_train_one, work))
        pool.close()
        pool.join()
    return done


def main(argv: list[str] | None = None) -> None:
    """Command line: train the book's models that are not cached yet."""
    parser = argparse.ArgumentParser(prog="python -m vaelib", description=main.__doc__)
    parser.add_argument("--jobs", type=int, default=None,
                        help="models trained at once (default: one per CPU core, or 1 with a GPU)")
    parser.add_argument("--list", action="store_true", help="print the models and exit")
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        parser.error(f"--jobs must be at least 1; got {args.jobs}")
    if args.list:
        for entry in models():
            print(f"{entry.name:24s} {entry.dataset:12s} excluded {list(entry.exclude)!s:5s} {entry.config}")
        return
    tic = time.perf_counter()
    done = train_missing(jobs=args.jobs)
    for name, seconds in done:
        print(f"trained {name:28s} {seconds:6.1f} s")
    print(f"{len(done)} of {len(models())} book models trained in {time.perf_counter() - tic:.0f} s "
          f"(the rest were cached)")
