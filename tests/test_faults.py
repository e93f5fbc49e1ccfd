"""Fault injection.

Kills, crashes, damaged files and failed writes neither lose work nor serve
wrong results.
"""

import errno
import json
import os
import random
import re
import subprocess
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import torch

import vaelib
from vaelib import cache, checkpoint, train
from vaelib.data import (
    DATA_ENV,
    DataCorruptError,
    find_idx_files,
    read_idx,
)

sys.path.insert(0, str(Path(__file__).parent))
from fault_child import STEPS_PER_EPOCH, TINY, synthetic_splits  # noqa: E402
from test_data import tiny_mnist  # noqa: E402

CHILD = Path(__file__).parent / "fault_child.py"
LIBRARY_ERRORS = (
    vaelib.CheckpointError,
    vaelib.CheckpointWriteError,
    vaelib.CacheError,
    DataCorruptError,
)


def run_child(*args: str) -> subprocess.CompletedProcess:
    """tests/fault_child.py in a process that sees no GPU.

    It forks, and CUDA does not survive a fork.
    """
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, str(CHILD), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=True,
    )


def run_state(run_dir: Path) -> dict:
    """Everything a finished run leaves.

    Best and last weights, optimizer state, metrics without timings.
    """
    best = torch.load(run_dir / "best.pt", weights_only=True)
    last = torch.load(run_dir / "last.pt", weights_only=True)
    metrics = pd.read_csv(run_dir / "metrics.csv").drop(
        columns=["train_seconds", "seconds"]
    )
    return {
        "best": best["model"],
        "best_epoch": best["epoch"],
        "last": last["model"],
        "adam": last["optimizer"]["state"],
        "metrics": metrics,
        "counters": {
            k: last[k]
            for k in ("epoch", "best_val", "best_epoch", "bad_epochs")
        },
    }


def assert_same_run(a: dict, b: dict) -> None:
    for key in ("best", "last"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (
                f"{key} weights {name} differ"
            )
    for i in a["adam"]:
        for name in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(a["adam"][i][name], b["adam"][i][name])
    pd.testing.assert_frame_equal(a["metrics"], b["metrics"], check_exact=True)
    assert (
        a["counters"] == b["counters"] and a["best_epoch"] == b["best_epoch"]
    )


# --- SIGKILL anywhere, then resume: bit-identical to a run never interrupted -


def kill_points() -> list:
    """The points where the child process is killed.

    Five kills at random training steps and renames, two between checkpoint
    writes, one before the last metrics.
    """
    rng = random.Random(20261126)
    steps = TINY.epochs * STEPS_PER_EPOCH
    points = [
        (f"step{n}", "step", n) for n in sorted(rng.sample(range(2, steps), 3))
    ]
    points += [
        (f"rename{n}", "rename", n)
        for n in sorted(rng.sample(range(1, 3 * TINY.epochs), 2))
    ]
    points += [
        ("after-best.pt-epoch1", "after_save", 1),
        ("after-save3", "after_save", 3),
        # last.pt final, metrics.csv one epoch behind
        ("last-metrics.csv", "metrics", TINY.epochs),
    ]
    return points


def test_sigkill_at_any_point_then_rerun_gives_the_uninterrupted_run(tmp_path):
    points = kill_points()
    child = run_child("kill", str(tmp_path), json.dumps(points))
    report = json.loads(child.stdout)
    assert report["reference"] == 0, child.stderr
    reference = run_state(tmp_path / "reference")
    assert reference["counters"]["epoch"] == TINY.epochs
    for name, _, _ in points:
        assert report[name] == {"killed": True, "resumed": 0}, (
            name,
            child.stderr,
        )
        assert_same_run(run_state(tmp_path / name), reference)
        assert not list((tmp_path / name).glob(".*.tmp")), (
            "a killed write left its temp file behind"
        )


# --- a crash between best.pt and last.pt, then a replay not bit-identical ----


def test_crash_between_checkpoint_writes_keeps_best_weights_and_score_together(
    tmp_path, monkeypatch
):
    splits, config = synthetic_splits(), TINY.replace(epochs=4)
    real_save = train.save_checkpoint

    def crash_after_best_of_epoch2(path, state):
        real_save(path, state)
        if Path(path).name == "best.pt" and state["epoch"] == 2:
            raise KeyboardInterrupt(
                "simulated crash between the two checkpoint writes"
            )

    monkeypatch.setattr(train, "save_checkpoint", crash_after_best_of_epoch2)
    with pytest.raises(KeyboardInterrupt):
        vaelib.fit(
            vaelib.build_model(config),
            splits,
            config,
            run_dir=tmp_path,
            progress=False,
        )
    monkeypatch.setattr(train, "save_checkpoint", real_save)
    real_epoch = train.train_epoch

    def replay_that_differs(model, *args, **kwargs):
        # e.g. another thread count: here, much worse weights
        out = real_epoch(model, *args, **kwargs)
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        return out

    monkeypatch.setattr(train, "train_epoch", replay_that_differs)
    model = vaelib.build_model(config)
    result = vaelib.fit(
        model, splits, config, run_dir=tmp_path, resume=True, progress=False
    )
    score = vaelib.evaluate(
        model, splits.val.images, config.beta, seed=config.seed
    )["loss"]
    assert score == pytest.approx(result.best_val_loss, rel=1e-6, abs=0)
    best = vaelib.load_checkpoint(tmp_path / "best.pt")
    assert (best["epoch"], best["val_loss"]) == (
        (result.best_epoch, result.best_val_loss)
    )


# --- every file of a cached run damaged in turn: the cache heals -------------


def damage(path: Path, how: str, rng: random.Random) -> None:
    data = path.read_bytes()
    if how == "delete":
        path.unlink()
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "flip":  # flip a few bytes
        data = bytearray(data)
        for i in rng.sample(range(len(data)), min(3, len(data))):
            data[i] ^= 0xFF
        path.write_bytes(bytes(data))
    else:
        # one bit of one digit: the file stays valid JSON, CSV or zip, with
        # another number in it
        digits = [i for i, b in enumerate(data) if 0x32 <= b <= 0x39]
        i = rng.choice(digits)
        path.write_bytes(data[:i] + bytes([data[i] ^ 1]) + data[i + 1 :])


@pytest.fixture(scope="module")
def cached_reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference-cache")
    model, result = vaelib.train_or_load(
        TINY, synthetic_splits(), folder, progress=False
    )
    assert result.trained
    return model.state_dict(), result.best_val_loss


@pytest.mark.parametrize(
    "how", ["delete", "empty", "truncate", "flip", "digit"]
)
@pytest.mark.parametrize("name", cache.RUN_FILES)
def test_a_damaged_cached_file_is_healed_by_retraining(
    tmp_path, cached_reference, name, how
):
    splits = synthetic_splits()
    vaelib.train_or_load(TINY, splits, tmp_path, progress=False)
    damage(
        vaelib.run_dir_for(TINY, splits, tmp_path) / name,
        how,
        random.Random(f"{name}{how}"),
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, result = vaelib.train_or_load(
            TINY, splits, tmp_path, progress=False
        )
    weights, best_val = cached_reference
    assert all(torch.equal(model.state_dict()[k], weights[k]) for k in weights)
    assert result.best_val_loss == best_val
    # without done.json the run is unfinished and simply resumes from last.pt
    if name != "done.json":
        assert result.trained and any(
            "Retraining" in str(w.message) for w in caught
        )
    # healed for good
    again, second = vaelib.train_or_load(
        TINY, splits, tmp_path, progress=False
    )
    assert not second.trained


@pytest.mark.parametrize("name", cache.RUN_FILES)
def test_a_build_counts_a_damaged_cached_run_as_missing(tmp_path, name):
    splits = synthetic_splits()
    vaelib.train_or_load(TINY, splits, tmp_path, progress=False)
    run_dir = vaelib.run_dir_for(TINY, splits, tmp_path)
    assert cache.is_cached(run_dir)
    # `python -m vaelib` retrains what this rejects
    damage(run_dir / name, "digit", random.Random(name))
    assert not cache.is_cached(run_dir)


def test_a_damaged_last_checkpoint_of_an_unfinished_run_is_healed(
    tmp_path, cached_reference
):
    splits = synthetic_splits()
    run_dir = vaelib.run_dir_for(TINY, splits, tmp_path)
    vaelib.fit(
        vaelib.build_model(TINY),
        splits,
        TINY.replace(epochs=2),
        run_dir=run_dir,
        progress=False,
    )
    damage(run_dir / "last.pt", "truncate", random.Random(0))
    with pytest.warns(UserWarning, match="Retraining"):
        model, _ = vaelib.train_or_load(TINY, splits, tmp_path, progress=False)
    weights, _ = cached_reference
    assert all(torch.equal(model.state_dict()[k], weights[k]) for k in weights)


# --- damaged data files ------------------------------------------------------


FLIPS = 100


@pytest.mark.parametrize(
    "stem",
    [
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
    ],
)
def test_random_byte_flips_in_an_idx_file_give_the_librarys_own_error(
    tmp_path, stem
):
    images, labels = find_idx_files(
        "train" if stem.startswith("train") else "test"
    )
    source = images if "images" in stem else labels
    data, original = source.read_bytes(), read_idx(source)
    assert source.suffix == ".gz"
    rng = random.Random(stem)
    flips = [
        (rng.randrange(len(data)), 1 << rng.randrange(8)) for _ in range(FLIPS)
    ]

    def read_flipped(flip: tuple[int, int]) -> int:
        """0 if the library refused the damaged file, else 1.

        What it reads back must be exactly the original data.
        """
        i, bit = flip
        damaged = bytearray(data)
        damaged[i] ^= bit
        target = tmp_path / f"{i}-{bit}" / source.name
        target.parent.mkdir()
        target.write_bytes(bytes(damaged))
        try:
            result = read_idx(target)
        except DataCorruptError:
            return 0
        finally:
            target.unlink()
        # a flip gzip cannot see changes no data: the header's time stamp,
        # extra flags or OS byte, padding bits, or a code length of a symbol
        # the stream never uses. The data must be exact.
        assert result.shape == original.shape and (result == original).all(), (
            f"flip at byte {i} read as data"
        )
        return 1

    # zlib releases the GIL while it inflates
    with ThreadPoolExecutor(2) as pool:
        harmless = sum(pool.map(read_flipped, flips))
    assert harmless < FLIPS // 4  # nearly every flip is caught


# --- concurrent builds and failed writes -------------------------------------


def test_two_model_builds_started_together_train_each_model_once(tmp_path):
    cache_dir = tmp_path / "cache"
    args = [sys.executable, str(CHILD), "concurrent", str(cache_dir)]
    # a few hundred training images: each model trains in a fraction of a
    # second, still while the other process asks for it (both start at once)
    data = tiny_mnist(tmp_path / "data")
    procs = [
        subprocess.Popen(
            args,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, DATA_ENV: str(data)},
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    lines = [
        line
        for out, _ in outputs
        for line in out.splitlines()
        if line.startswith("[")
    ]
    # "[####....]  33% 1/3 trained tiny-seed0 in 3 s; about 8 s left"
    names = (re.search(r" \d+/\d+ trained (\S+) in ", x) for x in lines)
    trained = sorted(m.group(1) for m in names if m)
    # each once, by one of the two
    assert trained == ["tiny-seed0", "tiny-seed1", "tiny-seed2"], lines
    assert len(lines) == 6  # the other process loaded it
    for done in cache_dir.glob("*/done.json"):
        assert len(pd.read_csv(done.parent / "metrics.csv")) == 1
    assert len(list(cache_dir.glob("*/done.json"))) == 3


def test_a_failed_write_gives_a_clear_error_and_keeps_the_previous_checkpoint(
    tmp_path, monkeypatch
):
    splits = synthetic_splits()
    vaelib.fit(
        vaelib.build_model(TINY),
        splits,
        TINY.replace(epochs=2),
        run_dir=tmp_path,
        progress=False,
    )
    before = {
        name: (tmp_path / name).read_bytes()
        for name in ("best.pt", "last.pt", "metrics.csv")
    }

    def disk_full(state, path):
        Path(path).write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", disk_full)
    with pytest.raises(
        vaelib.CheckpointWriteError,
        match="No space left on device.*previous version.*intact",
    ):
        vaelib.fit(
            vaelib.build_model(TINY),
            splits,
            TINY.replace(epochs=3),
            run_dir=tmp_path,
            resume=True,
            progress=False,
        )
    monkeypatch.undo()
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    assert not list(tmp_path.glob(".*.tmp"))
    # and the run goes on from there
    vaelib.fit(
        vaelib.build_model(TINY),
        splits,
        TINY.replace(epochs=3),
        run_dir=tmp_path,
        resume=True,
        progress=False,
    )
    assert vaelib.load_checkpoint(tmp_path / "last.pt")["epoch"] == 3


def test_a_cache_folder_that_cannot_be_created_gives_a_clear_error(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    with pytest.raises(
        vaelib.CacheError,
        match="Cannot create the model cache folder.*VAELIB_CACHE_DIR",
    ):
        vaelib.train_or_load(
            TINY, synthetic_splits(), blocker / "models", progress=False
        )


def test_waiting_for_another_trainer_times_out_with_a_clear_error(
    tmp_path, monkeypatch
):
    from filelock import FileLock

    run_dir = vaelib.run_dir_for(TINY, synthetic_splits(), tmp_path)
    monkeypatch.setenv(cache.LOCK_TIMEOUT_ENV, "0.2")
    with FileLock(f"{run_dir}.lock"):
        with pytest.raises(
            vaelib.CacheError,
            match="Waited 0 s for another process.*VAELIB_LOCK_TIMEOUT",
        ):
            vaelib.train_or_load(
                TINY, synthetic_splits(), tmp_path, progress=False
            )


# --- cache keys and names, what fit accepts, what importing vaelib does ------


def test_cache_folder_changes_with_the_training_code_and_names_what_sets_a_run_apart(  # noqa: E501
    tmp_path, monkeypatch, mnist
):
    splits = synthetic_splits()
    before = vaelib.run_dir_for(TINY, splits, tmp_path)
    monkeypatch.setattr(
        cache, "training_code_hash", lambda: "an edited train.py"
    )
    assert vaelib.run_dir_for(TINY, splits, tmp_path) != before
    assert {"model.py", "losses.py", "train.py", "likelihoods.py"} <= set(
        cache.TRAINING_SOURCES
    )
    names = {
        e.name: vaelib.run_dir_for(e.config, e.splits(mnist), tmp_path).name
        for e in vaelib.book.models()
        if e.dataset == "MNIST"
    }
    assert names["beta4-seed1"].startswith("latent10-beta4-seed1-e12-")
    assert names["free-bits-seed2"].startswith(
        "latent10-beta4-seed2-e12-freebits0.5-"
    )
    assert names["without-8-seed0"].startswith(
        "latent20-beta1-seed0-e12-without8-"
    )
    assert names["discretized-logistic-seed0"].startswith(
        "latent20-beta1-seed0-e12-logistic2-"
    )
    assert names["ablation-bn0-dropout1-seed2"].startswith(
        "latent2-beta1-seed2-e12-h256x128-drop0.2-lr0.001-"
    )
    assert names["recipe-latent20"].startswith("latent20-beta1-seed0-e60-")


def test_training_code_hash_follows_every_training_source(
    tmp_path, monkeypatch
):
    package = tmp_path / "vaelib"
    package.mkdir()
    for name in cache.TRAINING_SOURCES:
        (package / name).write_bytes(
            (Path(cache.__file__).parent / name).read_bytes()
        )
    monkeypatch.setattr(cache, "__file__", str(package / "cache.py"))
    original = cache.training_code_hash()
    for name in cache.TRAINING_SOURCES:
        source = package / name
        text = source.read_bytes()
        source.write_bytes(text + b"\nEDITED = 1\n")  # a statement: retrain
        assert cache.training_code_hash() != original, name
        source.write_bytes(text)
    assert cache.training_code_hash() == original


def test_fit_refuses_too_few_images_and_channels_last_input(mnist):
    splits = synthetic_splits()
    one = vaelib.Splits(
        vaelib.Split(splits.train.images[:1], splits.train.labels[:1]),
        splits.val,
        splits.test,
        "x",
    )
    with pytest.raises(ValueError, match="at least 2 training images.*got 1"):
        vaelib.fit(vaelib.build_model(TINY), one, TINY, progress=False)
    x = mnist.val.images[:64]
    last = vaelib.Split(x.permute(0, 2, 3, 1), mnist.val.labels[:64])
    config = vaelib.VAEConfig(epochs=1, device="cpu")
    with pytest.raises(
        ValueError, match=r"channels-last: use images.permute\(0, 3, 1, 2\)"
    ):
        vaelib.fit(
            vaelib.build_model(config),
            vaelib.Splits(last, last, last, "x"),
            config,
            progress=False,
        )


def test_importing_vaelib_changes_nothing_in_the_process():
    code = (
        "import sys, torch; "
        "before = torch.tensor([1e-40]).mul(1.0).item(); "
        "import vaelib; "
        "print(before == torch.tensor([1e-40]).mul(1.0).item() != 0, "
        "'matplotlib.pyplot' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # denormals still kept, no pyplot backend chosen
    assert out.split() == ["True", "False"]


def test_model_builds_use_the_cores_this_process_may_run_on():
    code = (
        "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
        "from vaelib.book import available_cores; print(available_cores())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.strip() == "1"


def test_layout_comments_and_docstrings_do_not_retrain(tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    before, after = tmp_path / "a" / "m.py", tmp_path / "b" / "m.py"
    before.write_text(
        'def f(x):\n    """Old docstring."""\n    return x + 1  # one\n'
    )
    after.write_text(
        "def f(x):\n"
        '    """A new docstring,\n\n    over several lines."""\n'
        "    # a comment of its own\n"
        "    return (\n        x\n        + 1\n    )\n"
    )
    assert cache.code_hash([before]) == cache.code_hash([after])
    after.write_text('def f(x):\n    """Old docstring."""\n    return x + 2\n')
    assert cache.code_hash([before]) != cache.code_hash([after])
    after.write_text(before.read_text())
    torch_changed = cache.code_hash([after], "2.15")
    assert cache.code_hash([before], "2.14") != torch_changed
