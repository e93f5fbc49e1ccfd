"""The benchmark results the speed appendix shows.

The scripts in bench/ measure, in a checkout of the book's repository, and
write their tables and stamps into this package's `bench_results` folder, so
an installed vaelib carries the numbers the appendix renders. This module
reads them back, turns them into the appendix's tables and refuses results
that no longer describe the code (`check_fresh`).
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import pandas as pd
import torch

from . import book, cache
from .compare import verdict
from .config import VAEConfig
from .data import project_root

# the modules whose code decides a trained model (the model cache's list),
# then the speed benchmark; paths in the checkout
TRAINING_CODE = (
    *(f"vaelib/{name}" for name in cache.TRAINING_SOURCES),
    "bench/train_speed.py",
)
# the recipe search's stamp: the training code, the rule and the search
SEARCH_CODE = (
    *TRAINING_CODE[:-1],
    "vaelib/compare.py",
    "bench/recipe_search.py",
)
# the speed benchmark's first ablation rows: one change at a time, from the
# reference loop towards vaelib.fit's loop (bench/train_speed.py runs them)
LOOP_ABLATIONS = (
    "(a) reference loop: DataLoader + ToTensor per image, Adam, "
    ".item() per batch",
    "(b) + batches sliced from one preloaded tensor",
    "(c) + fused Adam",
    "(d) + losses summed on the device, read once per epoch",
)
SEARCH_CANDIDATES = {  # the recipe search's candidates: name -> the change
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
TOGETHER = "adopted settings together"  # the name of the search's stage 3


def results_dir() -> Path:
    """The folder of benchmark results that ships inside vaelib."""
    return Path(__file__).parent / "bench_results"


def results_file(name: str) -> Path:
    """One file of the results, which must exist."""
    path = results_dir() / name
    if not path.is_file():
        raise FileNotFoundError(
            f"No benchmark results {path}. Run `make bench` (or the script "
            "in bench/ that writes it) from the repository root first."
        )
    return path


def read_table(name: str) -> pd.DataFrame:
    """A benchmark's table, by name: read_table("train_speed")."""
    return pd.read_csv(results_file(f"{name}.csv"))


def read_stamp(name: str) -> dict:
    """A benchmark's stamp (machine, code hashes), by name."""
    return json.loads(results_file(f"{name}.json").read_text())


def speed_markdown(table: pd.DataFrame) -> str:
    """The results as a Markdown table with ratios to the reference row."""
    ref = table.iloc[0]
    lines = [
        "| trainer | hidden | latent | LR schedule | epochs | s/epoch "
        "| images/s | × ref | matmul use | test −ELBO "
        "| time to ref. quality | ÷ ref wall |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        reached = math.isfinite(r.time_to_target_s)
        lines.append(
            f"| {r.trainer} | {r.hidden_dims} | {r.latent_dim} | "
            f"{r.scheduler} | {r.epochs} | {r.s_per_epoch:.2f} | "
            f"{r.images_per_s:,.0f} | "
            f"{r.images_per_s / ref.images_per_s:.2f} | "
            f"{r.matmul_fraction:.0%} | {r.test_neg_elbo:.2f} | "
            + (
                f"{r.time_to_target_s:.1f} s | "
                f"{r.time_to_target_s / ref.wall_s:.2f} |"
                if reached
                else "not reached | – |"
            )
        )
    return "\n".join(lines)


def ablation_markdown(table: pd.DataFrame) -> str:
    """The ablation rows, with each row's speed-up over the row before it."""
    lines = [
        "| change | denormals flushed | epochs | s/epoch | images/s "
        "| × row before |",
        "|---|---|---|---|---|---|",
    ]
    for i, r in table.iterrows():
        before = table.images_per_s.iloc[i - 1] if i else math.nan
        ratio = f"{r.images_per_s / before:.2f}" if i else "–"
        lines.append(
            f"| {r.change} | {'yes' if r.flush_denormal else 'no'} | "
            f"{r.epochs} | {r.s_per_epoch:.2f} | "
            f"{r.images_per_s:,.0f} | {ratio} |"
        )
    return "\n".join(lines)


def parallel_markdown(table: pd.DataFrame) -> str:
    """The parallel-training table, with the speed-up over one at a time."""
    lines = [
        "| how | processes × threads | models | epochs each | wall time | "
        "images/s (all models) | speed-up |",
        "|---|---|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        lines.append(
            f"| {r.how} | {r.processes} × {r.threads} | {r.models} | "
            f"{r.epochs} | {r.wall_s:.1f} s | "
            f"{r.images_per_s:,.0f} | {r.speedup:.2f}× |"
        )
    return "\n".join(lines)


def adopted_changes(names) -> dict:
    """The changes of some search candidates, merged into one dict."""
    return {
        key: value
        for name in names
        for key, value in SEARCH_CANDIDATES[name].items()
    }


def search_summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over seeds per (latent, candidate), and the verdict.

    The verdict is against the recipe at the same latent size.
    """
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


def search_winners(table: pd.DataFrame) -> list[str]:
    """Candidates that beat the recipe at latent 20 and are no worse at 2."""
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


def search_markdown(table: pd.DataFrame) -> str:
    """One line per (latent, candidate).

    Each gives the mean ± sd of the best validation -ELBO over seeds.
    """
    lines = [
        "| latent | candidate | validation −ELBO (mean ± sd) | seeds | "
        "train s / run | vs recipe |",
        "|---|---|---|---|---|---|",
    ]
    for (latent, name), r in table.iterrows():
        lines.append(
            f"| {latent} | {name} | {r['mean']:.2f} ± {r['std']:.2f} | "
            f"{int(r['count'])} | {r['train_s']:.0f} | {r['vs recipe']} |"
        )
    return "\n".join(lines)


def in_checkout() -> bool:
    """Whether vaelib runs from a checkout that holds the bench/ scripts."""
    root = project_root()
    return root is not None and (root / "bench" / "train_speed.py").is_file()


def code_hash(files=TRAINING_CODE) -> str:
    """Hash of the checkout's code that decides what a benchmark measures.

    The PyTorch version is hashed too. Needs a checkout (`in_checkout`).
    """
    if not in_checkout():
        raise RuntimeError("the benchmarks' code hash needs a checkout")
    root = project_root()
    return cache.code_hash([root / name for name in files], torch.__version__)


def library_code_hash() -> str:
    """Hash of vaelib's training code alone, without the PyTorch version."""
    return cache.code_hash(cache.training_sources())


def pinned_torch() -> str | None:
    """The PyTorch version the checkout's pyproject.toml pins, if any."""
    root = project_root()
    if root is None:
        return None
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    pins = [d for d in project["dependencies"] if d.startswith("torch==")]
    return pins[0].removeprefix("torch==") if pins else None


def check_fresh(
    stamp: dict, files=TRAINING_CODE, rerun: str = "make bench"
) -> None:
    """Raise if results were measured with other code (or another PyTorch).

    In a checkout running the pinned PyTorch (the book's build) the stamp's
    `code_hash` must equal `code_hash(files)`: the training code, the
    benchmark script and PyTorch, exactly as measured. Elsewhere (an
    installed vaelib on Colab or Binder, or a checkout in a reader's own
    environment) another PyTorch is expected: the results are then a record
    of the machine that measured them, and the check is that the library's
    training code is the code measured (`training_code_hash`, see
    `library_code_hash`).
    """
    checkout = in_checkout()
    running = torch.__version__.split("+")[0]
    if checkout and running == pinned_torch():
        measured, now = stamp.get("code_hash"), code_hash(files)
        what, covers = "code hash", files
    else:
        measured, now = stamp.get("training_code_hash"), library_code_hash()
        what = "training code hash"
        covers = [f"vaelib/{name}" for name in cache.TRAINING_SOURCES]
    if measured != now:
        where = "this checkout" if checkout else "this installed vaelib"
        raise RuntimeError(
            f"The benchmark results in {results_dir()} are stale: they were "
            f"measured with {what} {measured} and torch {stamp.get('torch')}"
            f", {where} has {now} and torch {torch.__version__} (the hash "
            f"covers {', '.join(covers)}). Rerun `{rerun}` in a checkout "
            "and commit vaelib/bench_results/."
        )


def check_search_fresh(stamp: dict) -> None:
    """Raise if the recipe search is stale.

    That is, if it ran with other code or seeds, or if the recipe is not what
    it adopted.
    """
    check_fresh(stamp, SEARCH_CODE, rerun="python bench/recipe_search.py")
    searched = VAEConfig.from_dict(stamp["start"]).replace(
        **adopted_changes(stamp["adopted"])
    )
    if searched != book.RECIPE or stamp.get("seeds") != list(book.SEEDS):
        raise RuntimeError(
            f"{results_dir() / 'recipe_search.csv'} does not describe "
            "vaelib.book.RECIPE: the search started elsewhere, adopted other "
            "settings or used other seeds. Rerun "
            "`python bench/recipe_search.py` and commit "
            "vaelib/bench_results/."
        )
