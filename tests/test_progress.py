"""`make models` progress and `python -m vaelib --list`."""

import vaelib
from vaelib import book
from vaelib.book import BookModel


def test_progress_weighs_models_by_cost_and_estimates_time_left():
    config = vaelib.VAEConfig.recommended()
    long, short = (
        BookModel("long", config.replace(epochs=60)),
        BookModel("short", config.replace(epochs=12)),
    )
    now = [0.0]
    progress = book.Progress([long, short], clock=lambda: now[0])
    now[0] = 100.0  # the 60-epoch model ends first: 60 of 72 epochs done
    line = progress.line(1, 2, "long", 60.0, True)
    assert line.startswith("[" + "#" * 20 + "." * 4 + "]  83% 1/2 trained")
    assert line.endswith("long in 60 s; about 20 s left")
    now[0] = 130.0
    assert progress.line(2, 2, "short", 30.0, False).endswith(
        "100% 2/2 loaded (another process trained it) short in 30 s; done"
    )
    assert book.duration(3 * 3600 + 5 * 60) == "3 h 05 min"


def test_list_says_which_models_are_cached(tmp_path):
    tiny = vaelib.VAEConfig.recommended(
        epochs=1, hidden_dims=(16,), device="cpu"
    )
    entries = [BookModel("a", tiny), BookModel("b", tiny.replace(seed=1))]
    book.train_missing(entries[:1], jobs=1, cache_dir=tmp_path)
    table = book.list_models(entries, cache_dir=tmp_path).splitlines()
    assert table[1].split()[:3] == ["a", "MNIST", "yes"]
    assert table[2].split()[:3] == ["b", "MNIST", "no"]
    assert table[-1].startswith(f"1 of 2 cached in {tmp_path}")
    assert "trains the other 1 (1 recipe epochs of work)" in table[-1]
