"""MNIST-style data: read IDX files (plain or .gz) into whole-split tensors.

Where the files come from, in order:
1. ``$VAELIB_DATA_DIR`` if set: a local folder, never downloaded into
   (offline machines, CI).
2. otherwise ``data/`` in the project checkout (or ``~/.cache/vaelib/data``
   when vaelib is installed elsewhere, e.g. Colab), downloaded there by
   torchvision on first use.

A whole split is loaded once into one float tensor on the training device;
batches are index slices of it, so there is no per-image Dataset/DataLoader
work in the training loop.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DATA_ENV = "VAELIB_DATA_DIR"
DATASETS = ("MNIST", "FashionMNIST")
# fixes which 5k training images form the validation split
SPLIT_SEED = 20131220
_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_DTYPE = {0x08: np.uint8}


class DataNotFoundError(FileNotFoundError):
    """The IDX files are not where vaelib looked and cannot be downloaded."""


class DataCorruptError(ValueError):
    """An IDX file is truncated, corrupt or not an IDX file.

    Corrupt: a bad gzip stream or checksum.
    """


@dataclass(frozen=True)
class Split:
    """Images in [0, 1] as float32 (N, 1, 28, 28) and integer labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.images)

    def to(self, device) -> Split:
        """The same split on another device."""
        return Split(self.images.to(device), self.labels.to(device))


@dataclass(frozen=True)
class Splits:
    """Train / validation / test splits and a fingerprint of the exact data."""

    train: Split
    val: Split
    test: Split
    # changes if the files, the dataset or the validation split change
    fingerprint: str
    # what sets the data apart in cache folder names:
    # "" for MNIST, "fashionmnist", "without8"
    tag: str = ""


def project_root() -> Path | None:
    """The checkout vaelib runs from (holding pyproject.toml), if any."""
    root = Path(__file__).resolve().parents[1]
    return (
        root
        if (root / "pyproject.toml").exists() and (root / "_toc.yml").exists()
        else None
    )


def default_data_dir() -> Path:
    """Where a reader's machine keeps downloaded data (git ignores data/)."""
    root = project_root()
    return (
        root / "data" if root else Path.home() / ".cache" / "vaelib" / "data"
    )


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed) into a numpy array."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as e:
        # gzip checks its CRC: damaged bytes end up here
        raise DataCorruptError(
            f"Could not read IDX file {path} ({type(e).__name__}: {e}): "
            f"it is truncated or corrupt. Delete it so it can be fetched "
            f"again, or copy it again."
        ) from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPE:
        raise DataCorruptError(
            f"{path} is not an IDX file of unsigned bytes "
            f"(bad magic number {raw[:4].hex()})."
        )
    ndim = raw[3]
    dims = tuple(
        int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    )
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(raw) - offset != expected:
        raise DataCorruptError(
            f"{path} is truncated or corrupt: header says {dims} = {expected} "
            f"bytes of data, file has {len(raw) - offset}. "
            f"Delete it and fetch it again."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def _find_file(folders: list[Path], stem: str) -> Path | None:
    for folder in folders:
        for name in (stem, stem + ".gz"):
            if (folder / name).is_file():
                return folder / name
    return None


def _candidate_folders(root: Path, name: str) -> list[Path]:
    return [root / name / "raw", root / name, root]


def _missing_message(root: Path, name: str, split: str, why: str) -> str:
    files = ", ".join(f"{s}[.gz]" for s in _FILES[split])
    searched = ", ".join(str(p) for p in _candidate_folders(root, name))
    return (
        f"{name} {split} data not found. Searched: {searched}. "
        f"Expected files: {files}. {why} "
        f"Set {DATA_ENV} to a folder that holds {name}/raw/ with these IDX "
        f"files (e.g. export {DATA_ENV}=../shared/data), or unset it and run "
        f"with internet access so torchvision can download them."
    )


def _download(root: Path, name: str, split: str) -> None:
    import torchvision

    dataset_cls = getattr(torchvision.datasets, name)
    try:
        dataset_cls(root=str(root), train=split == "train", download=True)
    except Exception as e:
        # network errors come in many types; the message below says what to do
        raise DataNotFoundError(
            _missing_message(root, name, split, f"Downloading failed ({e}).")
        ) from e


def find_idx_files(
    split: str = "train",
    name: str = "MNIST",
    root: str | Path | None = None,
    download: bool | None = None,
) -> tuple[Path, Path]:
    """Paths of one split's (images, labels) IDX files.

    Downloads them first if they are missing and downloading is allowed.
    """
    if name not in DATASETS:
        raise ValueError(f"name must be one of {DATASETS}; got {name!r}")
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    env = os.environ.get(DATA_ENV)
    if root is None:
        root = Path(env) if env else default_data_dir()
    root = Path(root).expanduser()
    if download is None:
        download = not env
    folders = _candidate_folders(root, name)
    paths = [_find_file(folders, stem) for stem in _FILES[split]]
    if None in paths and download:
        _download(root, name, split)
        paths = [_find_file(folders, stem) for stem in _FILES[split]]
    if None in paths:
        why = (
            "Downloads are off because the folder came from $" + DATA_ENV + "."
            if env
            else ""
        )
        raise DataNotFoundError(_missing_message(root, name, split, why))
    return paths[0], paths[1]


def load_split(
    split: str = "train",
    name: str = "MNIST",
    root: str | Path | None = None,
    download: bool | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Raw uint8 images (N, 28, 28) and labels (N,) of one split, from IDX."""
    image_path, label_path = find_idx_files(split, name, root, download)
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataCorruptError(
            f"{image_path} and {label_path} do not match: "
            f"images {images.shape}, labels {labels.shape}. "
            f"One of them is damaged or from another data set."
        )
    return images, labels


def split_indices(n: int, val_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) indices into n training images.

    Fixed by SPLIT_SEED, not by the run's seed.
    """
    if not 0 < val_size < n:
        raise ValueError(
            f"val_size must be between 1 and {n - 1}; got {val_size}"
        )
    perm = np.random.default_rng(SPLIT_SEED).permutation(n)
    return perm[val_size:], perm[:val_size]


def to_split(images: np.ndarray, labels: np.ndarray, device="cpu") -> Split:
    """uint8 (N, H, W) -> float32 (N, 1, H, W) in [0, 1] on `device`."""
    x = (
        torch.from_numpy(images.copy())
        .to(device)
        .unsqueeze(1)
        .float()
        .div_(255.0)
    )
    y = torch.from_numpy(labels.astype(np.int64)).to(device)
    return Split(x, y)


def fingerprint(*arrays: np.ndarray, extra: str = "") -> str:
    """Short hash of the bytes of some arrays.

    It identifies exactly which data a model saw.
    """
    h = hashlib.sha256(extra.encode())
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def load_mnist(
    val_size: int = 5000,
    device="cpu",
    name: str = "MNIST",
    root: str | Path | None = None,
) -> Splits:
    """Train / validation / test splits as tensors on `device`.

    Sizes: train 60k - val_size, validation val_size, test 10k.
    """
    train_x, train_y = load_split("train", name, root)
    test_x, test_y = load_split("test", name, root)
    train_idx, val_idx = split_indices(len(train_x), val_size)
    return Splits(
        train=to_split(train_x[train_idx], train_y[train_idx], device),
        val=to_split(train_x[val_idx], train_y[val_idx], device),
        test=to_split(test_x, test_y, device),
        fingerprint=fingerprint(
            train_x,
            train_y,
            test_x,
            test_y,
            extra=f"{name}/{val_size}/{SPLIT_SEED}",
        ),
        tag="" if name == "MNIST" else name.lower(),
    )


def load_test(
    name: str = "FashionMNIST", root: str | Path | None = None, device="cpu"
) -> Split:
    """Only the 10k test images of a dataset.

    E.g. Fashion-MNIST as out-of-distribution data.
    """
    return to_split(*load_split("test", name, root), device=device)


def without_labels(splits: Splits, excluded) -> Splits:
    """The same splits with some classes removed from train and validation.

    The test split keeps them all. For held-out-class experiments: a model
    trained on these never saw the excluded classes.
    """
    excluded = sorted({int(c) for c in excluded})
    present = set(splits.train.labels.unique().tolist())
    if not excluded or not set(excluded) <= present:
        raise ValueError(
            f"excluded must name classes present in the training labels "
            f"{sorted(present)}; got {excluded}"
        )

    def keep(split: Split) -> Split:
        mask = ~torch.isin(
            split.labels, torch.tensor(excluded, device=split.labels.device)
        )
        return Split(split.images[mask], split.labels[mask])

    without = f"without{''.join(map(str, excluded))}"
    return Splits(
        keep(splits.train),
        keep(splits.val),
        splits.test,
        fingerprint=f"{splits.fingerprint}-{without}",
        tag="-".join(filter(None, [splits.tag, without])),
    )
