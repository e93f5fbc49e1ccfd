"""The benchmark results the speed appendix shows, read through vaelib.

The committed results ship inside the package (vaelib/bench_results), so
the appendix runs from an installed vaelib; their freshness is checked with
the full code hash in a checkout and the training code hash when installed.
"""

import fnmatch
import math
import tomllib
from pathlib import Path

import pandas as pd
import pytest

import vaelib
from vaelib import benchmarks

ROOT = Path(__file__).resolve().parents[1]
# every file the appendix reads
APPENDIX_READS = (
    "train_speed.json",
    "train_speed.csv",
    "train_speed_ablation.csv",
    "recipe_search.json",
    "recipe_search.csv",
    "parallel_models.csv",
)


@pytest.fixture
def installed(monkeypatch):
    """vaelib as Colab has it: installed, with no checkout around it."""
    monkeypatch.setattr(benchmarks, "project_root", lambda: None)
    assert not benchmarks.in_checkout()


def test_results_dir_holds_the_files_the_appendix_reads():
    folder = benchmarks.results_dir()
    assert folder == Path(vaelib.__file__).parent / "bench_results"
    for name in APPENDIX_READS:
        assert (folder / name).is_file(), name
    assert not (ROOT / "bench" / "results").exists()  # one location only


def test_the_package_data_ships_every_result():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
        "setuptools"
    ]["package-data"]["vaelib"]
    for path in benchmarks.results_dir().iterdir():
        name = f"bench_results/{path.name}"
        assert any(fnmatch.fnmatch(name, p) for p in data), name


def test_a_missing_result_says_what_to_run(monkeypatch, tmp_path):
    monkeypatch.setattr(benchmarks, "results_dir", lambda: tmp_path)
    with pytest.raises(FileNotFoundError, match="make bench"):
        benchmarks.read_table("train_speed")
    with pytest.raises(FileNotFoundError, match="make bench"):
        benchmarks.read_stamp("train_speed")


def test_the_speed_tables_from_the_committed_results():
    table = benchmarks.read_table("train_speed")
    lines = benchmarks.speed_markdown(table).splitlines()
    assert len(lines) == 2 + len(table) and lines[0].startswith("| trainer |")
    ref = table.iloc[0]
    assert lines[2].startswith(f"| {ref.trainer} | {ref.hidden_dims} |")
    assert f"| {ref.images_per_s:,.0f} | 1.00 |" in lines[2]
    for line, (_, r) in zip(lines[2:], table.iterrows()):
        if math.isfinite(r.time_to_target_s):
            assert line.endswith(f"{r.time_to_target_s / ref.wall_s:.2f} |")
        else:
            assert line.endswith("| not reached | – |")
    ablation = benchmarks.read_table("train_speed_ablation")
    lines = benchmarks.ablation_markdown(ablation).splitlines()
    assert len(lines) == 2 + len(ablation) and lines[2].endswith("| – |")
    second = ablation.images_per_s.iloc[1] / ablation.images_per_s.iloc[0]
    assert lines[3].endswith(f"| {second:.2f} |")
    # the appendix takes the loop's rows by the count of names
    loop = list(ablation.change.iloc[: len(benchmarks.LOOP_ABLATIONS)])
    assert loop == list(benchmarks.LOOP_ABLATIONS)


def test_the_parallel_table_from_the_committed_results():
    parallel = benchmarks.read_table("parallel_models")
    lines = benchmarks.parallel_markdown(parallel).splitlines()
    assert len(lines) == 2 + len(parallel)
    assert lines[2].startswith("| one after another | 1 × ")
    assert lines[-1].endswith(f"| {parallel.speedup.iloc[-1]:.2f}× |")


def test_the_search_table_from_the_committed_results():
    stamp = benchmarks.read_stamp("recipe_search")
    table = benchmarks.search_summary(benchmarks.read_table("recipe_search"))
    lines = benchmarks.search_markdown(table).splitlines()
    assert len(lines) == 2 + len(table)
    assert all(
        table.loc[(lat, "recipe"), "vs recipe"] == "—" for lat in (2, 20)
    )
    assert benchmarks.search_winners(table) == stamp["adopted"]


def fake_runs(scores: dict) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "candidate": name,
                "latent_dim": latent,
                "seed": seed,
                "val_neg_elbo": value,
                "train_s": 1.0,
            }
            for (latent, name), values in scores.items()
            for seed, value in enumerate(values)
        ]
    )


def test_search_adopts_only_what_wins_beyond_the_spread_at_both_sizes():
    runs = fake_runs(
        {
            (20, "recipe"): [100.0, 100.5, 99.5],
            (20, "ELU"): [98.0, 98.1, 97.9],
            (20, "SiLU"): [99.4, 99.6, 99.5],
            (20, "lr 2e-3"): [98.0, 98.2, 97.8],
            (2, "recipe"): [140.0, 140.2, 139.8],
            (2, "ELU"): [143.0, 143.1, 142.9],
            (2, "lr 2e-3"): [139.9, 140.0, 140.1],
        }
    )
    table = benchmarks.search_summary(runs)
    # 0.5 better, spread 0.5: no claim
    assert table.loc[(20, "SiLU"), "vs recipe"] == "within spread"
    assert table.loc[(2, "ELU"), "vs recipe"] == "worse"
    # ELU wins at 20 but loses at 2
    assert benchmarks.search_winners(table) == ["lr 2e-3"]


def test_this_checkout_is_a_checkout_and_a_bare_folder_is_not(
    monkeypatch, tmp_path
):
    assert benchmarks.in_checkout()
    monkeypatch.setattr(benchmarks, "project_root", lambda: tmp_path)
    assert not benchmarks.in_checkout()  # no bench/train_speed.py there


def test_the_committed_results_are_fresh_in_the_checkout():
    benchmarks.check_fresh(benchmarks.read_stamp("train_speed"))
    benchmarks.check_search_fresh(benchmarks.read_stamp("recipe_search"))


def test_in_the_checkout_other_code_is_refused():
    stamp = benchmarks.read_stamp("train_speed")
    # the training code hash alone does not do in a checkout
    with pytest.raises(RuntimeError, match="stale.*this checkout.*make bench"):
        benchmarks.check_fresh({**stamp, "code_hash": "0" * 16})


def test_the_pin_read_from_pyproject_is_the_one_requirements_lock_has():
    lock = (ROOT / "requirements.lock").read_text().splitlines()
    assert f"torch=={benchmarks.pinned_torch()}" in lock


def test_a_checkout_with_another_torch_checks_the_training_code(monkeypatch):
    # a reader's own environment (a GPU box, say): the results are a record
    stamp = benchmarks.read_stamp("train_speed")
    monkeypatch.setattr(benchmarks.torch, "__version__", "2.11.0+cu130")
    assert benchmarks.in_checkout()
    benchmarks.check_fresh(stamp)
    benchmarks.check_search_fresh(benchmarks.read_stamp("recipe_search"))
    with pytest.raises(
        RuntimeError, match="stale.*training code hash 0{16}.*this checkout"
    ):
        benchmarks.check_fresh({**stamp, "training_code_hash": "0" * 16})


def test_the_search_must_describe_the_books_recipe():
    stamp = benchmarks.read_stamp("recipe_search")
    with pytest.raises(
        RuntimeError, match="does not describe vaelib.book.RECIPE"
    ):
        benchmarks.check_search_fresh(
            {**stamp, "adopted": stamp["adopted"][:-1]}
        )


def test_installed_the_training_code_decides(installed):
    stamp = benchmarks.read_stamp("train_speed")
    assert stamp["training_code_hash"] == benchmarks.library_code_hash()
    benchmarks.check_fresh(stamp)
    # the checkout's hash cannot be recomputed installed: not compared
    benchmarks.check_fresh({**stamp, "code_hash": "0" * 16})
    with pytest.raises(
        RuntimeError, match="stale.*training code hash 0{16}.*installed"
    ):
        benchmarks.check_fresh({**stamp, "training_code_hash": "0" * 16})
    # Colab keeps its own PyTorch: the results are a record, still shown
    benchmarks.check_fresh({**stamp, "torch": "1.0"})
    with pytest.raises(RuntimeError, match="stale.*training code hash None"):
        benchmarks.check_fresh(
            {k: v for k, v in stamp.items() if k != "training_code_hash"}
        )


def test_installed_the_search_is_checked_against_the_recipe(installed):
    stamp = {
        **benchmarks.read_stamp("recipe_search"),
        "training_code_hash": benchmarks.library_code_hash(),
    }
    benchmarks.check_search_fresh(stamp)
    with pytest.raises(RuntimeError, match="python bench/recipe_search.py"):
        benchmarks.check_search_fresh(
            {**stamp, "training_code_hash": "0" * 16}
        )
    with pytest.raises(
        RuntimeError, match="does not describe vaelib.book.RECIPE"
    ):
        benchmarks.check_search_fresh({**stamp, "seeds": [0]})
