"""The benchmark script runs end to end (tiny settings; its timings are not checked here)."""

import importlib.util
from pathlib import Path

import pandas as pd

SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "train_speed.py"


def load_bench():
    spec = importlib.util.spec_from_file_location("train_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_smoke_run_writes_its_table(tmp_path, capsys):
    bench = load_bench()
    table = bench.main(["--epochs", "1", "--recipe-epochs", "1", "--subset", "1000", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    csv = pd.read_csv(tmp_path / "train_speed.csv")
    assert list(csv["trainer"]) == ["(1) reference loop", "(2) vaelib.fit, seed config",
                                    "(3) vaelib.fit, recommended", "(4) vaelib.fit, recommended"]
    assert list(csv["latent_dim"]) == [2, 2, 2, 20]
    assert list(csv["hidden_dims"]) == ["256-128"] * 2 + ["-".join(map(str, bench.vaelib.VAEConfig.recommended().hidden_dims))] * 2
    assert (csv["images_per_s"] > 0).all() and (csv["test_neg_elbo"] > 0).all()
    assert csv.loc[0, "time_to_target_s"] == csv.loc[0, "wall_s"]  # one epoch: the reference reaches its own best
    assert bench.markdown(table) in printed
    assert (tmp_path / "train_speed.json").exists()


def test_parallel_benchmark_smoke_run_writes_its_table(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("parallel_models", SCRIPT.parent / "parallel_models.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    table = bench.main(["--models", "2", "--epochs", "1", "--out", str(tmp_path)])
    csv = pd.read_csv(tmp_path / "parallel_models.csv")
    assert list(csv["how"]) == ["one after another", "all at once"] and list(csv["processes"]) == [1, 2]
    assert csv.loc[0, "speedup"] == 1.0 and (csv["wall_s"] > 0).all()
    assert bench.markdown(table) in capsys.readouterr().out
