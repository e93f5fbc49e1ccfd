"""Training several models at once: one process per core vs one on all cores.

    # about 1.5 minutes on 2 cores
    VAELIB_DATA_DIR=../shared/data .venv/bin/python bench/parallel_models.py

`make models` trains the book's models with `vaelib.book.train_missing`: one
process per core, each limited to one thread. This measures, in one run on one
machine, the wall time to train the same recipe models (different seeds) (a)
one after another in one process using every core, and (b) all at once, one
single-threaded process each. Both include loading the data and starting
processes. Prints a Markdown table and writes
vaelib/bench_results/parallel_models.csv.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import pandas as pd

import vaelib
from vaelib.benchmarks import parallel_markdown as markdown
from vaelib.benchmarks import results_dir
from vaelib.book import SHORT_EPOCHS, BookModel, train_missing

RESULTS = results_dir()


def main(argv=None) -> pd.DataFrame:
    """Train the models both ways and write the CSV; returns the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cores = os.cpu_count() or 1
    parser.add_argument(
        "--models",
        type=int,
        default=cores,
        help="models to train (default: one per core)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=SHORT_EPOCHS,
        help="epochs per model (default: the later chapters' budget)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    entries = [
        BookModel(
            f"seed{s}",
            vaelib.VAEConfig.recommended(
                epochs=args.epochs, seed=s, device="cpu"
            ),
        )
        for s in range(args.models)
    ]
    n_train = len(entries[0].splits().train)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for how, jobs in (
            ("one after another", 1),
            ("all at once", args.models),
        ):
            print(f"training {args.models} models, {how}", flush=True)
            tic = time.perf_counter()
            train_missing(
                entries, jobs=jobs, cache_dir=Path(tmp) / how.replace(" ", "-")
            )
            wall = time.perf_counter() - tic
            rows.append(
                {
                    "how": how,
                    "processes": jobs,
                    "threads": max(1, cores // jobs),
                    "models": args.models,
                    "epochs": args.epochs,
                    "wall_s": wall,
                    "images_per_s": args.models * args.epochs * n_train / wall,
                }
            )
    table = pd.DataFrame(rows)
    table["speedup"] = table["images_per_s"] / table["images_per_s"].iloc[0]
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "parallel_models.csv", index=False)
    print(markdown(table))
    return table


if __name__ == "__main__":
    main()
