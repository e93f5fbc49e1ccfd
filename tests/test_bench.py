"""The benchmark script runs end to end (tiny settings; its timings are not checked here)."""

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "train_speed.py"


def load_bench(monkeypatch):
    monkeypatch.syspath_prepend(
        str(SCRIPT.parent)
    )  # the ablation rows run in spawned processes that import it
    import train_speed

    return train_speed


def test_benchmark_smoke_run_writes_its_tables_and_stamp(
    tmp_path, capsys, monkeypatch
):
    bench = load_bench(monkeypatch)
    table = bench.main(
        [
            "--epochs",
            "1",
            "--recipe-epochs",
            "1",
            "--ablation-epochs",
            "1",
            "--subset",
            "1000",
            "--out",
            str(tmp_path),
        ]
    )
    printed = capsys.readouterr().out
    csv = pd.read_csv(tmp_path / "train_speed.csv")
    assert list(csv["trainer"]) == [
        "(1) reference loop",
        "(2) vaelib.fit, seed config, same constant LR",
        "(3) vaelib.fit, seed config",
        "(4) vaelib.fit, recommended",
        "(5) vaelib.fit, recommended",
    ]
    assert list(csv["latent_dim"]) == [2, 2, 2, 2, 20]
    recipe = bench.vaelib.VAEConfig.recommended()
    assert (
        list(csv["scheduler"])
        == ["none", "none", "plateau"] + [recipe.scheduler] * 2
    )  # what each really ran
    assert (
        list(csv["hidden_dims"])
        == ["256-128"] * 3 + ["-".join(map(str, recipe.hidden_dims))] * 2
    )
    assert (csv["images_per_s"] > 0).all() and (csv["test_neg_elbo"] > 0).all()
    assert (
        csv.loc[0, "time_to_target_s"] == csv.loc[0, "wall_s"]
    )  # one epoch: the reference reaches its own best
    assert bench.markdown(table) in printed
    ablation = pd.read_csv(tmp_path / "train_speed_ablation.csv")
    assert (
        len(ablation) == len(bench.ABLATIONS) + 2
        and (ablation["images_per_s"] > 0).all()
    )
    assert list(ablation["flush_denormal"]) == [True] * (len(ablation) - 1) + [
        False
    ]
    assert bench.ablation_markdown(ablation) in printed
    machine = json.loads((tmp_path / "train_speed.json").read_text())
    bench.check_fresh(machine)  # just measured: fresh


def test_results_measured_with_other_training_code_are_refused(monkeypatch):
    bench = load_bench(monkeypatch)
    with pytest.raises(RuntimeError, match="stale.*make bench"):
        bench.check_fresh({"code_hash": "0" * 16, "torch": "1.0"})


def test_the_committed_results_match_this_checkout(monkeypatch):
    bench = load_bench(monkeypatch)
    bench.check_fresh(
        json.loads(
            (SCRIPT.parent / "results" / "train_speed.json").read_text()
        )
    )


def test_parallel_benchmark_smoke_run_writes_its_table(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location(
        "parallel_models", SCRIPT.parent / "parallel_models.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    table = bench.main(
        ["--models", "2", "--epochs", "1", "--out", str(tmp_path)]
    )
    csv = pd.read_csv(tmp_path / "parallel_models.csv")
    assert list(csv["how"]) == ["one after another", "all at once"] and list(
        csv["processes"]
    ) == [1, 2]
    assert csv.loc[0, "speedup"] == 1.0 and (csv["wall_s"] > 0).all()
    assert bench.markdown(table) in capsys.readouterr().out


def load_search(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    import recipe_search

    return recipe_search


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


def test_search_adopts_only_what_wins_beyond_the_spread_at_both_sizes(
    monkeypatch,
):
    search = load_search(monkeypatch)
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
    table = search.summary(runs)
    assert (
        table.loc[(20, "SiLU"), "vs recipe"] == "within spread"
    )  # 0.5 better, spread 0.5: no claim
    assert table.loc[(2, "ELU"), "vs recipe"] == "worse"
    assert search.winners(table) == [
        "lr 2e-3"
    ]  # ELU wins at 20 but loses at 2


def test_the_committed_search_describes_the_books_recipe(monkeypatch):
    search = load_search(monkeypatch)
    stamp = json.loads(
        (SCRIPT.parent / "results" / "recipe_search.json").read_text()
    )
    search.check_fresh(stamp)
    with pytest.raises(
        RuntimeError, match="does not describe vaelib.book.RECIPE"
    ):
        search.check_fresh({**stamp, "adopted": stamp["adopted"][:-1]})
    runs = pd.read_csv(SCRIPT.parent / "results" / "recipe_search.csv")
    assert search.winners(search.summary(runs)) == stamp["adopted"]
