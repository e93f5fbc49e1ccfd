"""The chapters' model registry and the parallel trainer of `make models`."""

import pytest

import vaelib
from test_data import tiny_mnist
from vaelib import book
from vaelib.book import BookModel
from vaelib.data import DATA_ENV


def test_every_book_model_is_distinct_and_named_once():
    entries = book.models()
    assert len({e.name for e in entries}) == len(entries)
    assert len(
        {(e.config.key(), e.exclude, e.dataset) for e in entries}
    ) == len(entries)
    assert {book.beta_vae(b).key() for b in book.BETAS} <= {
        e.config.key() for e in entries
    }
    # ch. 1's model is one of the ablations
    assert book.SEED == book.ablation(batch_norm=True, dropout=True)


def test_mitigation_names_are_checked():
    assert book.mitigated("free_bits").free_bits == book.FREE_BITS
    assert book.mitigated("kl_warmup").kl_warmup == book.KL_WARMUP
    with pytest.raises(ValueError, match="free_bits' or 'kl_warmup"):
        book.mitigated("annealing")


def test_train_missing_trains_in_parallel_once(tmp_path, monkeypatch):
    # the spawned trainers read the data folder from the environment
    monkeypatch.setenv(DATA_ENV, str(tiny_mnist(tmp_path / "data")))
    cache = tmp_path / "cache"
    tiny = vaelib.VAEConfig.recommended(
        epochs=1, hidden_dims=(16,), device="cpu"
    )
    entries = [BookModel("a", tiny), BookModel("b", tiny, exclude=(3,))]
    trained = book.train_missing(entries, jobs=2, cache_dir=cache)
    assert sorted(name for name, _, fresh in trained if fresh) == ["a", "b"]
    assert len(list(cache.glob("*/done.json"))) == 2
    # everything cached now
    assert book.train_missing(entries, jobs=2, cache_dir=cache) == []


def test_command_line_refuses_zero_jobs(capsys):
    with pytest.raises(SystemExit):
        book.main(["--jobs", "0"])
    assert "--jobs must be at least 1" in capsys.readouterr().err
