"""The search behind the book's recipe, made on the validation split only.

    VAELIB_DATA_DIR=../shared/data .venv/bin/python bench/recipe_search.py   # about 12 minutes on 2 cores

One factor at a time away from the recipe as it stood before the search (`START`: today's
`VAEConfig.recommended()` with the settings the search replaced put back), each candidate trained
with the seeds in
`vaelib.book.SEEDS` at latent 20 (stage 1), for `vaelib.book.SHORT_EPOCHS` epochs: the budget most
of the book's models train for (`--epochs 60` runs the same search at the recipe models' budget,
about five times longer). The number of epochs itself is a cost decision, not a searched one: at 60
epochs the validation loss is still falling (the training chapter shows the curve). The score of a
run is its best validation -ELBO (the epoch `fit` keeps); the test split is never read. Decision
rule, fixed before the runs:

- a candidate *beats* the recipe at a latent size if its mean over seeds is lower by more than
  twice the larger of the two standard deviations (`vaelib.compare.verdict`: a difference larger
  than the seed spread);
- a candidate that beats the recipe at latent 20 is trained at latent 2 as well (stage 2) and
  replaces the recipe's setting only if it is not worse there by more than the same margin;
- the adopted settings are then trained together, at both latent sizes (stage 3), to confirm that
  the combination beats the starting recipe by the same rule; `VAEConfig.recommended()` is that
  combination (the appendix checks it).

Runs go through the model cache, so the recipe's own runs are shared with the book's models.
Prints a Markdown table and writes bench/results/recipe_search.csv (one row per run).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import torch

import vaelib
from vaelib import book
from vaelib.book import BookModel, train_missing
from vaelib.compare import verdict

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_speed import TRAINING_CODE, code_hash  # noqa: E402  (the same stamp as the speed benchmark)
from train_speed import check_fresh as train_speed_check  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
START = dict(
    lr=1e-3, scheduler="cosine"
)  # the recipe before the search: what it replaced, put back
TOGETHER = "adopted settings together"  # the name of stage 3's runs
SEARCH_CODE = (
    *TRAINING_CODE[:-1],
    "vaelib/compare.py",
    "bench/recipe_search.py",
)
CANDIDATES = {  # name -> the change to the recipe
    "recipe": {},
    "middle layer 128": dict(hidden_dims=(256, 128)),
    "ELU": dict(activation="elu"),
    "SiLU": dict(activation="silu"),
    "lr 5e-4": dict(lr=5e-4),
    "lr 2e-3": dict(lr=2e-3),
    "batch 256": dict(batch_size=256),
    "plateau LR": dict(scheduler="plateau"),
    "batch norm": dict(batch_norm=True),
    "dropout 0.2": dict(dropout=0.2),
}


def start(latent: int, **changes) -> vaelib.VAEConfig:
    """The starting recipe at one latent size, with some changes."""
    return book.recipe(latent, **{**START, **changes})


def adopted_changes(names) -> dict:
    """The changes of some candidates, merged into one dict."""
    return {
        key: value for name in names for key, value in CANDIDATES[name].items()
    }


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
    """Train (or load) every config; one row per run with its best validation -ELBO."""
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


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over seeds per (latent, candidate), and the verdict against the recipe."""
    groups = runs.groupby(["latent_dim", "candidate"], sort=False)
    table = groups["val_neg_elbo"].agg(["mean", "std", "count"])
    table["train_s"] = groups["train_s"].mean()
    scores = groups["val_neg_elbo"].apply(list)
    names = {
        "lower": "better",
        "higher": "worse",
        "within spread": "within spread",
    }
    table["vs recipe"] = [
        "—"
        if name == "recipe"
        else names[verdict(scores[lat, name], scores[lat, "recipe"])]
        for lat, name in table.index
    ]
    return table


def winners(table: pd.DataFrame) -> list[str]:
    """Candidates that beat the recipe at latent 20 and are not worse at latent 2."""
    better = [
        n
        for (lat, n), r in table.iterrows()
        if lat == 20 and r["vs recipe"] == "better" and n != TOGETHER
    ]
    return [
        n
        for n in better
        if (2, n) in table.index and table.loc[(2, n), "vs recipe"] != "worse"
    ]


def markdown(table: pd.DataFrame) -> str:
    """One line per (latent, candidate): mean ± sd of the best validation -ELBO over seeds."""
    lines = [
        "| latent | candidate | validation −ELBO (mean ± sd) | seeds | train s / run | vs recipe |",
        "|---|---|---|---|---|---|",
    ]
    for (latent, name), r in table.iterrows():
        lines.append(
            f"| {latent} | {name} | {r['mean']:.2f} ± {r['std']:.2f} | {int(r['count'])} | "
            f"{r['train_s']:.0f} | {r['vs recipe']} |"
        )
    return "\n".join(lines)


def check_fresh(stamp: dict) -> None:
    """Raise if the search ran with other code or seeds, or if the recipe is not what it adopted."""
    train_speed_check(stamp, SEARCH_CODE)
    searched = vaelib.VAEConfig.from_dict(stamp["start"]).replace(
        **adopted_changes(stamp["adopted"])
    )
    if searched != book.RECIPE or stamp.get("seeds") != list(book.SEEDS):
        raise RuntimeError(
            "bench/results/recipe_search.csv does not describe vaelib.book.RECIPE: the search started "
            "elsewhere, adopted other settings or used other seeds. Rerun `python bench/recipe_search.py` "
            "and commit bench/results/."
        )


def main(argv=None) -> pd.DataFrame:
    """Stage 1 at latent 20, stage 2 at latent 2 for whatever won; writes the CSV."""
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
    stage2 = [
        n for (_, n), r in first.iterrows() if r["vs recipe"] == "better"
    ]  # check these at latent 2
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
    if (
        len(adopted) > 1
    ):  # stage 3: the adopted settings together, at both sizes
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
