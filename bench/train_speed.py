"""Training speed and quality, side by side in one run on one machine.

    # about 15 minutes on 2 cores
    VAELIB_DATA_DIR=../shared/data .venv/bin/python bench/train_speed.py

Compares
  (1) reference: the loop a typical tutorial uses - torchvision MNIST +
      ToTensor + DataLoader(128, shuffle=True), the seed architecture (batch
      norm + dropout), Adam 1e-3 at a constant learning rate, `.item()` every
      batch;
  (2) vaelib.fit with the same architecture, epochs and constant learning
      rate (like for like);
  (3) vaelib.fit with the seed config's own plateau schedule;
  (4) vaelib.fit with the book's recipe, VAEConfig.recommended(), latent 2;
  (5) the same recipe at latent 20.
Every trainer is scored by the same instrument (vaelib.evaluate on the same
validation and test images) and selects its model on validation. Then ablation
rows, each changing one thing at a time on the way from (1) to vaelib.fit's
loop (throughput over a few epochs), and the denormal flush on and off for a
trained recipe model; each ablation row runs in a fresh process, so that its
thread pool starts with the floating-point settings the row asks for.

Prints Markdown tables with ratios and writes
vaelib/bench_results/train_speed.csv, train_speed_ablation.csv and
train_speed.json (the machine, the measured matmul rate, `code_hash()` and
`vaelib.benchmarks.library_code_hash()`: the appendix refuses results
measured with other training code, or in the book's build with another
PyTorch; see `vaelib.benchmarks.check_fresh`).
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import math
import multiprocessing
import platform
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import torch
from torch import nn

import vaelib
from vaelib.benchmarks import (
    LOOP_ABLATIONS,
    ablation_markdown,
    code_hash,
    results_dir,
)
from vaelib.benchmarks import speed_markdown as markdown
from vaelib.data import Split, Splits, find_idx_files, split_indices

RESULTS = results_dir()


def matmul_gflops(
    batch: int = 128, n_in: int = 784, n_out: int = 256, seconds: float = 2.0
) -> float:
    """Measured GFLOP/s of the first layer's matmul.

    It is timed at the training batch size.
    """
    a, b = torch.randn(batch, n_in), torch.randn(n_in, n_out)
    for _ in range(50):
        a @ b
    count, tic = 0, time.perf_counter()
    while time.perf_counter() - tic < seconds:
        for _ in range(100):
            a @ b
        count += 100
    return (
        2.0 * batch * n_in * n_out * count / (time.perf_counter() - tic) / 1e9
    )


def torchvision_mnist(folder: Path):
    """torchvision's MNIST dataset over plain copies of vaelib's IDX files.

    Nothing is downloaded.
    """
    from torchvision import datasets, transforms

    raw = folder / "MNIST" / "raw"
    raw.mkdir(parents=True)
    # torchvision checks for all four
    for path in (*find_idx_files("train"), *find_idx_files("test")):
        with (
            (gzip.open if path.suffix == ".gz" else open)(path, "rb") as src,
            open(raw / path.name.removesuffix(".gz"), "wb") as dst,
        ):
            shutil.copyfileobj(src, dst)
    return datasets.MNIST(
        str(folder),
        train=True,
        download=False,
        transform=transforms.ToTensor(),
    )


def reference_loop(
    config: vaelib.VAEConfig,
    splits: Splits,
    train_idx,
    epochs: int,
    data: str = "dataloader",
    fused: bool = False,
    sync_every_batch: bool = True,
) -> tuple[pd.DataFrame, nn.Module]:
    """The tutorial loop.

    Dataset + DataLoader, per-batch .item(), sum-reduced loss, plain Adam,
    constant LR. The switches turn it, one thing at a time, into vaelib.fit's
    loop: data="tensor" takes batches as index slices of the preloaded
    training tensor, fused=True uses the fused Adam kernel, and
    sync_every_batch=False sums the losses on the device and reads them once
    per epoch.
    """
    from torch.utils.data import DataLoader, Subset

    with tempfile.TemporaryDirectory() as tmp:
        if data == "dataloader":
            loader = DataLoader(
                Subset(torchvision_mnist(Path(tmp)), train_idx),
                batch_size=config.batch_size,
                shuffle=True,
            )
        else:
            images = splits.train.images
            loader = _TensorBatches(images, config.batch_size)
        model = vaelib.build_model(config)
        optimizer = torch.optim.Adam(
            model.parameters(), lr=config.lr, fused=fused or None
        )
        torch.manual_seed(config.seed)
        rows, best, best_state = [], math.inf, None
        for epoch in range(1, epochs + 1):
            tic, total = time.perf_counter(), torch.zeros(())
            model.train()
            for x, _ in loader:
                optimizer.zero_grad()
                out = model(x)
                loss = vaelib.vae_loss(
                    out.logits, x.view(len(x), -1), out.mu, out.logvar
                ).loss.sum()
                loss.backward()
                total += loss.item() if sync_every_batch else loss.detach()
                optimizer.step()
            total.item()
            train_seconds = time.perf_counter() - tic
            val = vaelib.evaluate(model, splits.val.images)
            rows.append(
                {
                    "epoch": epoch,
                    "val_neg_elbo": val["neg_elbo"],
                    "train_seconds": train_seconds,
                    "seconds": time.perf_counter() - tic,
                }
            )
            if val["neg_elbo"] < best:
                best, best_state = (
                    val["neg_elbo"],
                    copy.deepcopy(model.state_dict()),
                )
    model.load_state_dict(best_state)
    return pd.DataFrame(rows), model.eval()


class _TensorBatches:
    """Shuffled (images, None) batches sliced from one preloaded tensor."""

    def __init__(self, images: torch.Tensor, batch_size: int):
        self.images, self.batch_size = images, batch_size

    def __iter__(self):
        perm = torch.randperm(len(self.images))
        for start in range(0, len(perm), self.batch_size):
            yield self.images[perm[start : start + self.batch_size]], None


def vaelib_fit(
    config: vaelib.VAEConfig, splits: Splits
) -> tuple[pd.DataFrame, nn.Module]:
    """vaelib.fit, with the history in the benchmark's columns."""
    model = vaelib.build_model(config)
    history = vaelib.fit(model, splits, config, progress=False).history
    history["val_neg_elbo"] = history["val_recon"] + history["val_kl"]
    return history, model


def summarise(
    name: str,
    config,
    history: pd.DataFrame,
    model,
    splits: Splits,
    n_train: int,
    gflops: float,
    target: float | None,
    scheduler: str | None = None,
) -> dict:
    """One table row: a trainer's speed, efficiency and quality.

    The quality is that of the model selected on validation. `scheduler`
    names the learning-rate schedule the trainer really ran (default:
    config.scheduler).
    """
    per_epoch = history["train_seconds"].mean()
    images_per_s = n_train / per_epoch
    elapsed = history["seconds"].cumsum()
    reached = (
        history.index[history["val_neg_elbo"] <= target]
        if target is not None
        else history.index[[]]
    )
    return {
        "trainer": name,
        "hidden_dims": "-".join(map(str, config.hidden_dims)),
        "latent_dim": config.latent_dim,
        "batch_norm": config.batch_norm,
        "dropout": config.dropout,
        "scheduler": scheduler or config.scheduler,
        "epochs": len(history),
        "s_per_epoch": per_epoch,
        "images_per_s": images_per_s,
        "matmul_fraction": (
            images_per_s * vaelib.train_flops_per_image(model) / 1e9 / gflops
        ),
        "wall_s": elapsed.iloc[-1],
        "best_val_neg_elbo": history["val_neg_elbo"].min(),
        "test_neg_elbo": (
            vaelib.evaluate(model, splits.test.images)["neg_elbo"]
        ),
        "time_to_target_s": elapsed[reached[0]] if len(reached) else math.nan,
    }


# one change at a time, from the reference loop towards vaelib.fit's loop:
# (the row's name, reference_loop's switches for it)
ABLATIONS = list(
    zip(
        LOOP_ABLATIONS,
        (
            {},
            dict(data="tensor"),
            dict(data="tensor", fused=True),
            dict(data="tensor", fused=True, sync_every_batch=False),
        ),
        strict=True,
    )
)


def load(subset: int) -> tuple[Splits, object]:
    """The MNIST splits and the training indices into the 60k training file.

    Both are cut to `subset` images if it is > 0.
    """
    splits = vaelib.load_mnist()
    train_idx, _ = split_indices(
        len(splits.train) + len(splits.val), len(splits.val)
    )
    if subset:
        train_idx = train_idx[:subset]
        splits = Splits(
            Split(splits.train.images[:subset], splits.train.labels[:subset]),
            splits.val,
            splits.test,
            splits.fingerprint,
        )
    return splits, train_idx


def _isolated(job: dict) -> dict:
    """One ablation row, in a fresh process.

    Its threads start with the requested denormal setting.
    """
    # before the first parallel op creates the thread pool
    torch.set_flush_denormal(job["flush"])
    torch.set_num_threads(job["threads"])
    splits, train_idx = load(job["subset"])
    if job["kind"] == "loop":
        config = vaelib.VAEConfig(
            epochs=job["epochs"],
            scheduler="none",
            early_stopping=0,
            device="cpu",
        )
        history, _ = reference_loop(
            config, splits, train_idx, job["epochs"], **job["switches"]
        )
    else:
        # a trained recipe model trained on for a few epochs at a small
        # constant learning rate
        config = vaelib.VAEConfig.recommended(
            epochs=job["epochs"], scheduler="none", lr=1e-4, device="cpu"
        )
        model = vaelib.VAE(config)
        model.load_state_dict(torch.load(job["weights"], weights_only=True))
        history = vaelib.fit(
            model, splits, config, progress=False, flush_denormals=job["flush"]
        ).history
    return {
        "change": job["name"],
        "epochs": job["epochs"],
        "flush_denormal": job["flush"],
        "s_per_epoch": history["train_seconds"].mean(),
        "images_per_s": len(train_idx) / history["train_seconds"].mean(),
    }


def run_isolated(jobs: list[dict]) -> pd.DataFrame:
    """Each job in its own spawned process, one after another.

    Nothing else runs meanwhile.
    """
    rows = []
    for job in jobs:
        print(f"ablation: {job['name']}", flush=True)
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            rows.append(pool.apply(_isolated, (job,)))
    return pd.DataFrame(rows)


def main(argv=None) -> pd.DataFrame:
    """Run the trainers and the ablations; write the CSVs and the JSON.

    Returns the main table.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--epochs", type=int, default=20, help="epochs for (1) to (3)"
    )
    parser.add_argument(
        "--recipe-epochs", type=int, default=60, help="epochs for (4) and (5)"
    )
    parser.add_argument(
        "--ablation-epochs",
        type=int,
        default=3,
        help="epochs per ablation row",
    )
    parser.add_argument(
        "--subset",
        type=int,
        default=0,
        help="train on only this many images (smoke test)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    splits, train_idx = load(args.subset)
    gflops = matmul_gflops()
    seed = vaelib.VAEConfig(epochs=args.epochs, early_stopping=0, device="cpu")
    constant = seed.replace(scheduler="none")
    runs = [
        (
            "(1) reference loop",
            constant,
            "none",
            lambda: reference_loop(constant, splits, train_idx, args.epochs),
        ),
        (
            "(2) vaelib.fit, seed config, same constant LR",
            constant,
            "none",
            lambda: vaelib_fit(constant, splits),
        ),
        (
            "(3) vaelib.fit, seed config",
            seed,
            seed.scheduler,
            lambda: vaelib_fit(seed, splits),
        ),
    ]
    for latent in (2, 20):
        recipe = vaelib.VAEConfig.recommended(
            latent_dim=latent, epochs=args.recipe_epochs, device="cpu"
        )
        runs.append(
            (
                f"({len(runs) + 1}) vaelib.fit, recommended",
                recipe,
                recipe.scheduler,
                lambda r=recipe: vaelib_fit(r, splits),
            )
        )
    rows, target, trained = [], None, {}
    for name, config, scheduler, run in runs:
        print(
            f"running {name} "
            f"(latent {config.latent_dim}, {config.epochs} epochs)",
            flush=True,
        )
        history, model = run()
        trained[name] = model
        if target is None:
            # the quality the reference reaches in its epochs
            target = history["val_neg_elbo"].min()
        rows.append(
            summarise(
                name,
                config,
                history,
                model,
                splits,
                len(train_idx),
                gflops,
                target,
                scheduler,
            )
        )
    table = pd.DataFrame(rows)

    threads = torch.get_num_threads()
    jobs = [
        dict(kind="loop", name=name, switches=switches, flush=True)
        for name, switches in ABLATIONS
    ]
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "recipe.pt"
        torch.save(trained[runs[3][0]].state_dict(), weights)
        jobs += [
            dict(
                kind="trained",
                name="(e) trained recipe model (latent 2), denormals flushed",
                flush=True,
            ),
            dict(
                kind="trained",
                name="(f) the same, denormals kept",
                flush=False,
            ),
        ]
        for job in jobs:
            job.update(
                epochs=args.ablation_epochs,
                subset=args.subset,
                threads=threads,
                weights=str(weights),
            )
        ablation = run_isolated(jobs)

    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "train_speed.csv", index=False)
    ablation.to_csv(args.out / "train_speed_ablation.csv", index=False)
    machine = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "processor": cpu_name(),
        "cores": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "matmul_gflops": gflops,
        "matmul_shape": "(128, 784) @ (784, 256), float32",
        "flop_per_image_seed": vaelib.train_flops_per_image(vaelib.VAE(seed)),
        "target_val_neg_elbo": target,
        "train_images": len(train_idx),
        "command": "python bench/train_speed.py",
        "code_hash": code_hash(),
        "training_code_hash": vaelib.benchmarks.library_code_hash(),
    }
    (args.out / "train_speed.json").write_text(json.dumps(machine, indent=2))
    print(
        f"\nmatmul: {gflops:.1f} GFLOP/s on {machine['processor']} "
        f"({machine['cores']} threads); "
        f"target = reference's best validation −ELBO = {target:.2f}\n"
    )
    print(markdown(table))
    print()
    print(ablation_markdown(ablation))
    return table


def cpu_name() -> str:
    """The processor's model name, from /proc/cpuinfo where there is one."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


if __name__ == "__main__":
    main()
