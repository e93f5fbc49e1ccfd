"""Training on a small real subset of MNIST.

Learning, determinism, resume, checkpoints, errors.
"""

import pandas as pd
import pytest
import torch

import vaelib
from vaelib import (
    CheckpointError,
    TrainingDivergedError,
    build_model,
    fit,
    load_checkpoint,
)
from vaelib.checkpoint import atomic_write
from vaelib.data import Split, Splits


def weights_equal(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        torch.equal(sa[k], sb[k]) for k in sa
    )


def no_time(history: pd.DataFrame) -> pd.DataFrame:
    return history.drop(columns=["seconds", "train_seconds"])


def test_training_lowers_validation_neg_elbo(small, tiny_config, tmp_path):
    model = build_model(tiny_config)
    before = vaelib.evaluate(model, small.val.images)["neg_elbo"]
    result = fit(model, small, tiny_config, run_dir=tmp_path, progress=False)
    after = vaelib.evaluate(model, small.val.images)["neg_elbo"]
    # starts near 784 log 2, learns fast
    assert before > 500 and after < 250, (before, after)
    assert (
        result.history["val_loss"].iloc[-1]
        < result.history["val_loss"].iloc[0] - 20
    )
    # the model holds the best weights
    assert after == pytest.approx(result.best_val_loss, abs=1e-3)
    csv = pd.read_csv(tmp_path / "metrics.csv")
    pd.testing.assert_frame_equal(
        csv, result.history, check_exact=False, rtol=1e-6
    )
    best = load_checkpoint(tmp_path / "best.pt")
    assert (
        best["epoch"] == result.best_epoch
        and best["val_loss"] == result.best_val_loss
    )


def test_same_seed_gives_identical_metrics_and_weights(small, tiny_config):
    runs = []
    for _ in range(2):
        model = build_model(tiny_config)
        runs.append((model, fit(model, small, tiny_config, progress=False)))
    pd.testing.assert_frame_equal(
        no_time(runs[0][1].history),
        no_time(runs[1][1].history),
        check_exact=True,
    )
    assert weights_equal(runs[0][0], runs[1][0])
    other = build_model(tiny_config.replace(seed=1))
    other_history = fit(
        other, small, tiny_config.replace(seed=1), progress=False
    ).history
    assert not no_time(other_history).equals(no_time(runs[0][1].history))


def test_resume_after_interruption_matches_an_uninterrupted_run(
    small, tiny_config, tmp_path
):
    config = tiny_config.replace(scheduler="cosine")
    full_model = build_model(config)
    full = fit(
        full_model, small, config, run_dir=tmp_path / "full", progress=False
    )

    def interrupt_after_epoch_2(row):
        if row["epoch"] == 2:
            raise KeyboardInterrupt

    model = build_model(config)
    with pytest.raises(KeyboardInterrupt):
        fit(
            model,
            small,
            config,
            run_dir=tmp_path / "cut",
            progress=False,
            on_epoch_end=interrupt_after_epoch_2,
        )
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 2
    # a fresh process would start from fresh weights
    resumed_model = build_model(config)
    resumed = fit(
        resumed_model,
        small,
        config,
        run_dir=tmp_path / "cut",
        resume=True,
        progress=False,
    )
    pd.testing.assert_frame_equal(
        no_time(resumed.history), no_time(full.history), check_exact=True
    )
    assert weights_equal(resumed_model, full_model)


def test_resume_refuses_a_different_config(small, tiny_config, tmp_path):
    fit(
        build_model(tiny_config),
        small,
        tiny_config.replace(epochs=1),
        run_dir=tmp_path,
        progress=False,
    )
    other = tiny_config.replace(latent_dim=3)
    with pytest.raises(CheckpointError, match="different config"):
        fit(
            build_model(other),
            small,
            other,
            run_dir=tmp_path,
            resume=True,
            progress=False,
        )


def test_early_stopping_keeps_the_best_epoch(small, tiny_config, monkeypatch):
    losses = iter([10.0, 9.0, 9.5, 9.6, 9.7, 9.8])
    snapshots = {}

    def fake_evaluate(model, images, beta=1.0, seed=0, labels=None):
        snapshots[len(snapshots) + 1] = {
            k: v.clone() for k, v in model.state_dict().items()
        }
        return {"loss": next(losses), "recon": 0.0, "kl": 0.0}

    monkeypatch.setattr(vaelib.train, "evaluate", fake_evaluate)
    config = tiny_config.replace(epochs=6, early_stopping=2, scheduler="none")
    model = build_model(config)
    result = fit(model, small, config, progress=False)
    assert list(result.history["epoch"]) == [1, 2, 3, 4]
    assert (
        result.stopped_early
        and result.best_epoch == 2
        and result.best_val_loss == 9.0
    )
    assert all(
        torch.equal(model.state_dict()[k], v) for k, v in snapshots[2].items()
    )


def test_nan_loss_stops_with_a_clear_error(small, tiny_config, tmp_path):
    bad = small.train.images.clone()
    bad[7, 0, 3, 3] = float("nan")
    splits = Splits(
        Split(bad, small.train.labels), small.val, small.test, "nan"
    )
    with pytest.raises(
        TrainingDivergedError,
        match=r"diverged in epoch 1.*Lower the learning rate",
    ):
        fit(
            build_model(tiny_config),
            splits,
            tiny_config,
            run_dir=tmp_path,
            progress=False,
        )
    assert not (tmp_path / "last.pt").exists()  # nothing poisoned was saved


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_damaged_checkpoint_raises_a_clear_error(
    small, tiny_config, tmp_path, damage
):
    fit(
        build_model(tiny_config),
        small,
        tiny_config.replace(epochs=1),
        run_dir=tmp_path,
        progress=False,
    )
    path = tmp_path / "last.pt"
    data = path.read_bytes()
    path.write_bytes(
        data[: len(data) // 2]
        if damage == "truncate"
        else b"not a checkpoint at all"
    )
    with pytest.raises(
        CheckpointError,
        match="truncated or corrupt.*delete the file and train again",
    ):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match=str(path)):
        fit(
            build_model(tiny_config),
            small,
            tiny_config,
            run_dir=tmp_path,
            resume=True,
            progress=False,
        )


def test_missing_checkpoint_raises_a_clear_error(tmp_path):
    with pytest.raises(
        CheckpointError, match="No checkpoint at .*Train a model first"
    ):
        load_checkpoint(tmp_path / "best.pt")


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("old")

    def crash(tmp):
        open(tmp, "w").write("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, crash)
    assert (path.read_text() == "old") and (
        [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]
    )


def test_train_or_load_trains_once_then_loads(
    small, tiny_config, tmp_path, monkeypatch
):
    config = tiny_config.replace(epochs=2)
    model, result = vaelib.train_or_load(
        config, small, cache_dir=tmp_path, progress=False
    )

    def must_not_train(*args, **kwargs):
        raise AssertionError("train_or_load retrained a cached model")

    monkeypatch.setattr(vaelib.cache, "fit", must_not_train)
    again, cached = vaelib.train_or_load(
        config, small, cache_dir=tmp_path, progress=False
    )
    assert weights_equal(model, again) and not again.training
    assert (
        cached.best_epoch == result.best_epoch
        and cached.best_val_loss == pytest.approx(result.best_val_loss)
    )
    pd.testing.assert_frame_equal(
        cached.history, result.history, check_exact=False, rtol=1e-6
    )
    assert vaelib.run_dir_for(config, small, tmp_path) != vaelib.run_dir_for(
        config.replace(beta=2.0), small, tmp_path
    )


def test_train_or_load_makes_a_second_caller_wait_and_load(
    small, tiny_config, tmp_path, monkeypatch
):
    """Two kernels ask for the same model at once.

    One trains, the other waits for it and loads.
    """
    import threading

    calls, real_fit = [], vaelib.cache.fit

    def counting_fit(*args, **kwargs):
        calls.append(threading.get_ident())
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(vaelib.cache, "fit", counting_fit)
    config, results = tiny_config.replace(epochs=2), {}

    def worker(name):
        results[name] = vaelib.train_or_load(
            config, small, cache_dir=tmp_path, progress=False
        )[0]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and weights_equal(results[0], results[1])


def test_kl_warmup_ramps_the_weight_linearly_then_holds_beta(tiny_config):
    config = tiny_config.replace(beta=2.0, kl_warmup=4)
    assert [vaelib.train.kl_weight(config, e) for e in (0, 1, 2, 4, 7)] == (
        [0.0, 0.5, 1.0, 2.0, 2.0]
    )
    assert vaelib.train.kl_weight(tiny_config.replace(beta=3.0), 0) == 3.0


def test_kl_warmup_lowers_the_kl_weight_in_the_first_epochs(
    small, tiny_config
):
    config = tiny_config.replace(
        epochs=2, kl_warmup=2, batch_norm=False, dropout=0.0
    )
    history = fit(build_model(config), small, config, progress=False).history
    first = history.iloc[0]
    # the reported training loss uses the ramped weight (below 1 all through
    # epoch 1) ...
    assert first.train_loss < first.train_recon + 0.75 * first.train_kl
    # ... while validation scores the full objective
    assert history.val_loss.tolist() == pytest.approx(
        (history.val_recon + history.val_kl).tolist()
    )


def test_conditional_vae_trains_and_needs_labels(small, tiny_config, tmp_path):
    config = tiny_config.replace(num_classes=10, epochs=2)
    model, result = vaelib.train_or_load(
        config, small, cache_dir=tmp_path, progress=False
    )
    assert result.history.val_loss.iloc[-1] < result.history.val_loss.iloc[0]
    with pytest.raises(ValueError, match="conditional"):
        vaelib.evaluate(model, small.test.images)
    scores = vaelib.evaluate(
        model, small.test.images, labels=small.test.labels
    )
    assert scores["neg_elbo"] < 300
    # the label changes what the decoder draws from the same code
    z = torch.zeros(2, config.latent_dim)
    a, b = (
        model.decode(z, torch.tensor([1, 1])),
        model.decode(z, torch.tensor([1, 8])),
    )
    assert torch.equal(a[0], a[1]) and (a[1] - b[1]).abs().max() > 0.1


def test_without_labels_model_never_sees_the_excluded_digit(
    small, tiny_config, tmp_path
):
    splits = vaelib.data.without_labels(small, [3])
    assert (
        3 not in splits.train.labels
        and 3 not in splits.val.labels
        and 3 in splits.test.labels
    )
    assert vaelib.run_dir_for(
        tiny_config, splits, tmp_path
    ) != vaelib.run_dir_for(tiny_config, small, tmp_path)


@pytest.mark.parametrize(
    "changes, tag",
    [
        (dict(flow_steps=2), "iaf2"),
        (dict(prior="mog", prior_components=5), "mog5"),
        (dict(prior="vamp", prior_components=5), "vamp5"),
        (dict(tc_penalty=3.0), "tc3"),
    ],
)
def test_flow_prior_and_tc_models_train_cache_and_reload(
    small, tmp_path, changes, tag
):
    config = vaelib.VAEConfig(
        epochs=2, batch_size=100, batch_norm=False, device="cpu", **changes
    )
    model, result = vaelib.train_or_load(
        config, small, cache_dir=tmp_path, progress=False
    )
    h = result.history
    assert h.val_loss.iloc[-1] < h.val_loss.iloc[0]
    assert (h.val_kl > 0).all()
    run_dir = vaelib.run_dir_for(config, small, tmp_path)
    assert tag in run_dir.name
    again, _ = vaelib.load_run(run_dir, "cpu")
    assert weights_equal(model, again)
    val = vaelib.evaluate(again, small.val.images, seed=config.seed)
    assert val["loss"] == pytest.approx(result.best_val_loss, rel=1e-5)
    if changes.get("tc_penalty"):
        # the TC penalty enters the training loss, not the reported terms,
        # and changes what is learnt
        plain, plain_result = vaelib.train_or_load(
            config.replace(tc_penalty=0.0), small, tmp_path, progress=False
        )
        p = plain_result.history
        assert (abs(p.train_loss - p.train_recon - p.train_kl) < 1e-4).all()
        assert (abs(h.train_loss - h.train_recon - h.train_kl) > 1e-3).all()
        assert not weights_equal(model, plain)
