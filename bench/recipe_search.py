"""The search behind the book's recipe, made on the validation split only.

    # about 12 minutes on 2 cores
    VAELIB_DATA_DIR=../shared/data .venv/bin/python bench/recipe_search.py

One factor at a time away from the recipe as it stood before the search
(`START`: today's `VAEConfig.recommended()` with the settings the search
replaced put back), each candidate trained with the seeds in
`vaelib.book.SEEDS` at latent 20 (stage 1), for `vaelib.book.SHORT_EPOCHS`
epochs: the budget most of the book's models train for (`--epochs 60` runs the
same search at the recipe models' budget, about five times longer). The number
of epochs itself is a cost decision, not a searched one: at 60 epochs the
validation loss is still falling (the training chapter shows the curve). The
score of a run is its best validation -ELBO (the epoch `fit` keeps); the test
split is never read. Decision rule, fixed before the runs:

- a candidate *beats* the recipe at a latent size if its mean over seeds is
  lower by more than twice the larger of the two standard deviations
  (`vaelib.compare.verdict`: a difference larger than the seed spread);
- a candidate that beats the recipe at latent 20 is trained at latent 2 as
  well (stage 2) and replaces the recipe's setting only if it is not worse
  there by more than the same margin;
- the adopted settings are then trained together, at both latent sizes
  (stage 3), to confirm that the combination beats the starting recipe by the
  same rule; `VAEConfig.recommended()` is that combination (the appendix
  checks it).

Runs go through the model cache, so the recipe's own runs are shared with the
book's models. Prints a Markdown table and writes
vaelib/bench_results/recipe_search.csv (one row per run) and
recipe_search.json (its stamp: `vaelib.benchmarks.check_search_fresh`
refuses the search if the code, the seeds or the recipe changed).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch

import vaelib
from vaelib import book
from vaelib.benchmarks import SEARCH_CANDIDATES as CANDIDATES
from vaelib.benchmarks import (
    SEARCH_CODE,
    TOGETHER,
    adopted_changes,
    code_hash,
    results_dir,
)
from vaelib.benchmarks import search_markdown as markdown
from vaelib.benchmarks import search_summary as summary
from vaelib.benchmarks import search_winners as winners
from vaelib.book import BookModel, train_missing

RESULTS = results_dir()
# the recipe before the search: what it replaced, put back
START = dict(lr=1e-3, scheduler="cosine")


def start(latent: int, **changes) -> vaelib.VAEConfig:
    """The starting recipe at one latent size, with some changes."""
    return book.recipe(latent, **{**START, **changes})


def configs(
    names, latent: int, epochs: int
) -> list[tuple[str, vaelib.VAEConfig]]:
    """(candidate, config) for every candidate and seed at one latent size."""
    return [
        (name, start(latent, seed=seed, epochs=epochs, **CANDIDATES[name]))
        for name in names
        for seed in book.SEEDS
    ]


def run(pairs, jobs: int | None, cache_dir) -> pd.DataFrame:
    """Train (or load) every config.

    One row per run, with its best validation -ELBO.
    """
    mnist = vaelib.load_mnist()
    entries = [BookModel(f"{name}/seed{c.seed}", c) for name, c in pairs]
    train_missing(entries, jobs=jobs, cache_dir=cache_dir)
    rows = []
    for (name, config), entry in zip(pairs, entries):
        _, result = vaelib.train_or_load(
            config, entry.splits(mnist), cache_dir, progress=False
        )
        rows.append(
            {
                "candidate": name,
                "latent_dim": config.latent_dim,
                "seed": config.seed,
                "epochs": config.epochs,
                "best_epoch": result.best_epoch,
                "val_neg_elbo": result.best_val_loss,
                "train_s": result.history["train_seconds"].sum(),
            }
        )
    return pd.DataFrame(rows)


def main(argv=None) -> pd.DataFrame:
    """Run the search and write the CSV.

    Stage 1 at latent 20, stage 2 at latent 2 for whatever won.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--jobs", type=int, default=None, help="models trained at once"
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=book.SHORT_EPOCHS,
        help="epochs of every run",
    )
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        help="candidates to run (default: all)",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="model cache (default: the book's)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    names = args.only or list(CANDIDATES)
    if "recipe" not in names:
        names = ["recipe", *names]
    runs = run(configs(names, 20, args.epochs), args.jobs, args.cache)
    first = summary(runs)
    # check these at latent 2
    stage2 = [
        n for (_, n), r in first.iterrows() if r["vs recipe"] == "better"
    ]
    if stage2:
        runs = pd.concat(
            [
                runs,
                run(
                    configs(["recipe", *stage2], 2, args.epochs),
                    args.jobs,
                    args.cache,
                ),
            ]
        )
    adopted = winners(summary(runs))
    if len(adopted) > 1:
        # stage 3: the adopted settings together, at both sizes
        both = [
            (
                TOGETHER,
                start(
                    latent,
                    seed=seed,
                    epochs=args.epochs,
                    **adopted_changes(adopted),
                ),
            )
            for latent in (20, 2)
            for seed in book.SEEDS
        ]
        runs = pd.concat([runs, run(both, args.jobs, args.cache)])
    table = summary(runs)
    args.out.mkdir(parents=True, exist_ok=True)
    runs.to_csv(args.out / "recipe_search.csv", index=False)
    stamp = {
        "code_hash": code_hash(SEARCH_CODE),
        "training_code_hash": vaelib.benchmarks.library_code_hash(),
        "torch": torch.__version__,
        "start": start(book.RECIPE.latent_dim).to_dict(),
        "seeds": list(book.SEEDS),
        "epochs": args.epochs,
        "command": "python bench/recipe_search.py",
        "adopted": adopted,
    }
    (args.out / "recipe_search.json").write_text(json.dumps(stamp, indent=2))
    print(markdown(table))
    print(f"\nadopted: {', '.join(adopted) or 'nothing; the recipe stands'}")
    return table


if __name__ == "__main__":
    main()
