import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

import vaelib
from vaelib.data import DATA_ENV, load_split, read_idx


def write_idx(path, array: np.ndarray, compress: bool = False):
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    data = header + array.astype(np.uint8).tobytes()
    # closed (and flushed) before anyone reads it
    with (gzip.open if compress else open)(path, "wb") as f:
        f.write(data)


def tiny_mnist(
    folder: Path,
    train: int | None = None,
    test: int = 100,
    plain: tuple[str, ...] = (),
) -> Path:
    """Random digits in MNIST's four IDX files, gzipped but for `plain`.

    `train` training images (by default a few hundred beyond the default
    validation split, so that spawned trainers find real splits) and `test`
    test images; `plain` names the splits ("train", "t10k") left
    uncompressed.
    """
    train = vaelib.VAEConfig().val_size + 300 if train is None else train
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for stem, n in (("train", train), ("t10k", test)):
        gz = "" if stem in plain else ".gz"
        write_idx(
            folder / f"{stem}-images-idx3-ubyte{gz}",
            rng.integers(0, 256, (n, 28, 28)),
            compress=bool(gz),
        )
        write_idx(
            folder / f"{stem}-labels-idx1-ubyte{gz}",
            rng.integers(0, 10, n),
            compress=bool(gz),
        )
    return folder


def test_full_splits_are_disjoint_and_cover_the_training_set(mnist):
    assert (len(mnist.train), len(mnist.val), len(mnist.test)) == (
        (55_000, 5_000, 10_000)
    )
    assert (
        mnist.train.images.shape[1:] == (1, 28, 28)
        and mnist.train.images.dtype == torch.float32
    )
    assert mnist.train.images.min() == 0 and mnist.train.images.max() == 1
    raw_x, raw_y = load_split("train")
    # train + val is a permutation of the 60k training images: same pixel and
    # label totals
    total = mnist.train.images.double().sum() + mnist.val.images.double().sum()
    expected = raw_x.astype(np.float64).sum() / 255
    # one digit has ~100 units of ink
    assert abs(total.item() - expected) < 1.0, (total.item(), expected)
    assert torch.equal(
        torch.bincount(torch.cat([mnist.train.labels, mnist.val.labels])),
        torch.bincount(torch.from_numpy(raw_y.astype(np.int64))),
    )
    assert set(mnist.test.labels.tolist()) == set(range(10))


def test_fingerprint_depends_on_the_split():
    assert (
        vaelib.load_mnist(val_size=5000).fingerprint
        != vaelib.load_mnist(val_size=4000).fingerprint
    )


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, compress):
    a = np.arange(2 * 3 * 4).reshape(2, 3, 4).astype(np.uint8)
    path = tmp_path / ("x.gz" if compress else "x")
    write_idx(path, a, compress)
    assert np.array_equal(read_idx(path), a)


def test_truncated_idx_file_is_reported(tmp_path):
    write_idx(tmp_path / "x", np.zeros((10, 28, 28)))
    data = (tmp_path / "x").read_bytes()
    (tmp_path / "x").write_bytes(data[:-100])
    with pytest.raises(ValueError, match="truncated or corrupt.*Delete it"):
        read_idx(tmp_path / "x")


def test_missing_data_folder_names_folder_variable_and_files(
    tmp_path, monkeypatch
):
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(vaelib.DataNotFoundError) as err:
        vaelib.load_mnist()
    message = str(err.value)
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in message
    assert (
        DATA_ENV in message
        and "train-images-idx3-ubyte" in message
        and "Downloads are off" in message
    )


def test_local_folder_of_plain_or_gzip_files_is_read(tmp_path, monkeypatch):
    tiny_mnist(tmp_path / "MNIST" / "raw", train=30, test=10, plain=("t10k",))
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    splits = vaelib.load_mnist(val_size=5)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (
        (25, 5, 10)
    )
    with pytest.raises(ValueError, match="val_size must be between 1 and 29"):
        vaelib.load_mnist(val_size=30)


def test_fashion_mnist_test_split_loads_as_a_split(mnist):
    fashion = vaelib.data.load_test("FashionMNIST")
    assert (
        fashion.images.shape == (10_000, 1, 28, 28)
        and fashion.images.dtype == torch.float32
    )
    assert (
        0 <= fashion.images.min()
        and fashion.images.max() <= 1
        and set(fashion.labels.tolist()) == set(range(10))
    )
    assert not torch.equal(fashion.images, mnist.test.images)


def test_fashion_mnist_has_its_own_training_validation_and_test_splits(mnist):
    fashion = vaelib.load_mnist(name="FashionMNIST")
    assert (len(fashion.train), len(fashion.val), len(fashion.test)) == (
        (55_000, 5_000, 10_000)
    )
    assert fashion.fingerprint != mnist.fingerprint
    # scored on its test split
    assert torch.equal(
        fashion.test.images, vaelib.data.load_test("FashionMNIST").images
    )
    assert not torch.equal(
        fashion.train.images[:100], mnist.train.images[:100]
    )


def test_without_labels_refuses_an_unknown_class(mnist):
    with pytest.raises(ValueError, match="present in the training labels"):
        vaelib.data.without_labels(mnist, [11])
