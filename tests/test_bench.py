"""The benchmark scripts run end to end.

They run with tiny settings; their timings are not checked here. What the
appendix reads back (tables, freshness) is tested in test_benchmarks.py.
"""

import importlib.util
import json
from functools import partial
from pathlib import Path

import pandas as pd
import torch

from test_data import tiny_mnist
from vaelib import benchmarks
from vaelib.data import DATA_ENV
from vaelib.train import _denormals_flushed

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "train_speed.py"


def load_bench(monkeypatch):
    # the ablation rows run in spawned processes that import it
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    import train_speed

    return train_speed


def in_this_process_after_the_first(bench):
    """bench.run_isolated that spawns a process for the first row only.

    The other rows run the same `_isolated` here: a fresh process per row
    matters for the timings, which a smoke run does not check, and each
    spawn costs seconds (a PyTorch import). This process's thread count and
    denormal setting are restored afterwards.
    """
    spawned = bench.run_isolated

    def run_isolated(jobs: list[dict]) -> pd.DataFrame:
        threads, flushed = torch.get_num_threads(), _denormals_flushed()
        try:
            rest = [bench._isolated(job) for job in jobs[1:]]
        finally:
            torch.set_num_threads(threads)
            torch.set_flush_denormal(flushed)
        return pd.concat(
            [spawned(jobs[:1]), pd.DataFrame(rest)], ignore_index=True
        )

    return run_isolated


def test_benchmark_smoke_run_writes_its_tables_and_stamp(
    tmp_path, capsys, monkeypatch
):
    bench = load_bench(monkeypatch)
    monkeypatch.setattr(
        bench, "run_isolated", in_this_process_after_the_first(bench)
    )
    # its matmul rate from a tenth of a second, not two
    monkeypatch.setattr(
        bench, "matmul_gflops", partial(bench.matmul_gflops, seconds=0.1)
    )
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
    # what each really ran
    assert (
        list(csv["scheduler"])
        == ["none", "none", "plateau"] + [recipe.scheduler] * 2
    )
    assert (
        list(csv["hidden_dims"])
        == ["256-128"] * 3 + ["-".join(map(str, recipe.hidden_dims))] * 2
    )
    assert (csv["images_per_s"] > 0).all() and (csv["test_neg_elbo"] > 0).all()
    # one epoch: the reference reaches its own best
    assert csv.loc[0, "time_to_target_s"] == csv.loc[0, "wall_s"]
    assert bench.markdown(table) in printed
    ablation = pd.read_csv(tmp_path / "train_speed_ablation.csv")
    assert (
        len(ablation) == len(bench.ABLATIONS) + 2
        and (ablation["images_per_s"] > 0).all()
    )
    assert list(ablation["flush_denormal"]) == (
        [True] * (len(ablation) - 1) + [False]
    )
    assert bench.ablation_markdown(ablation) in printed
    machine = json.loads((tmp_path / "train_speed.json").read_text())
    # just measured: fresh, in a checkout and installed alike
    assert machine["code_hash"] == benchmarks.code_hash()
    assert machine["training_code_hash"] == benchmarks.library_code_hash()
    benchmarks.check_fresh(machine)
    # by default the script writes where the appendix reads
    assert bench.RESULTS == benchmarks.results_dir()


def test_parallel_benchmark_smoke_run_writes_its_table(
    tmp_path, capsys, monkeypatch
):
    # the spawned trainers read the data folder from the environment
    monkeypatch.setenv(DATA_ENV, str(tiny_mnist(tmp_path / "data")))
    spec = importlib.util.spec_from_file_location(
        "parallel_models", SCRIPT.parent / "parallel_models.py"
    )
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    table = bench.main(
        ["--models", "2", "--epochs", "1", "--out", str(tmp_path / "out")]
    )
    csv = pd.read_csv(tmp_path / "out" / "parallel_models.csv")
    assert (list(csv["how"]) == ["one after another", "all at once"]) and (
        list(csv["processes"]) == [1, 2]
    )
    assert csv.loc[0, "speedup"] == 1.0 and (csv["wall_s"] > 0).all()
    assert bench.markdown(table) in capsys.readouterr().out


def test_the_search_script_uses_the_rule_and_folder_the_appendix_reads(
    monkeypatch,
):
    monkeypatch.syspath_prepend(str(SCRIPT.parent))
    import recipe_search

    assert recipe_search.summary is benchmarks.search_summary
    assert recipe_search.winners is benchmarks.search_winners
    assert recipe_search.CANDIDATES is benchmarks.SEARCH_CANDIDATES
    assert recipe_search.RESULTS == benchmarks.results_dir()
