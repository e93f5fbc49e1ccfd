"""Training speed and quality, side by side in one run on one machine.

    VAELIB_DATA_DIR=../shared/data .venv/bin/python bench/train_speed.py   # about 6 minutes on 2 cores

Compares
  (1) reference: the loop a typical tutorial uses - torchvision MNIST + ToTensor + DataLoader(128,
      shuffle=True), the seed architecture (batch norm + dropout), Adam 1e-3, `.item()` every batch;
  (2) vaelib.fit with the same architecture and number of epochs;
  (3) vaelib.fit with the book's recipe, VAEConfig.recommended() (middle layer 256, no BN/dropout,
      cosine LR), latent 2;
  (4) the same recipe at latent 20.
Every trainer is scored by the same instrument (vaelib.evaluate on the same validation and test
images) and selects its model on validation. Prints a Markdown table with ratios to (1) and writes
bench/results/train_speed.csv and train_speed.json (the machine and the measured matmul rate).
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import math
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
from vaelib.data import Split, Splits, find_idx_files, split_indices

RESULTS = Path(__file__).resolve().parent / "results"


def matmul_gflops(batch: int = 128, n_in: int = 784, n_out: int = 256, seconds: float = 2.0) -> float:
    """Measured GFLOP/s of the first layer's matmul at the training batch size."""
    a, b = torch.randn(batch, n_in), torch.randn(n_in, n_out)
    for _ in range(50):
        a @ b
    count, tic = 0, time.perf_counter()
    while time.perf_counter() - tic < seconds:
        for _ in range(100):
            a @ b
        count += 100
    return 2.0 * batch * n_in * n_out * count / (time.perf_counter() - tic) / 1e9


def torchvision_mnist(folder: Path):
    """torchvision's MNIST dataset over plain copies of the IDX files vaelib reads (no download)."""
    from torchvision import datasets, transforms

    raw = folder / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for path in (*find_idx_files("train"), *find_idx_files("test")):  # torchvision checks for all four
        with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as src, open(raw / path.name.removesuffix(".gz"), "wb") as dst:
            shutil.copyfileobj(src, dst)
    return datasets.MNIST(str(folder), train=True, download=False, transform=transforms.ToTensor())


def reference_loop(config: vaelib.VAEConfig, splits: Splits, train_idx, epochs: int) -> tuple[pd.DataFrame, nn.Module]:
    """The tutorial loop: Dataset + DataLoader, per-batch .item(), sum-reduced loss, plain Adam."""
    from torch.utils.data import DataLoader, Subset

    with tempfile.TemporaryDirectory() as tmp:
        loader = DataLoader(Subset(torchvision_mnist(Path(tmp)), train_idx), batch_size=config.batch_size, shuffle=True)
        model = vaelib.build_model(config)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        torch.manual_seed(config.seed)
        rows, best, best_state = [], math.inf, None
        for epoch in range(1, epochs + 1):
            tic, total = time.perf_counter(), 0.0
            model.train()
            for x, _ in loader:
                optimizer.zero_grad()
                out = model(x)
                loss = vaelib.vae_loss(out.logits, x.view(len(x), -1), out.mu, out.logvar).loss.sum()
                loss.backward()
                total += loss.item()
                optimizer.step()
            train_seconds = time.perf_counter() - tic
            val = vaelib.evaluate(model, splits.val.images)
            rows.append({"epoch": epoch, "val_neg_elbo": val["neg_elbo"], "train_seconds": train_seconds,
                         "seconds": time.perf_counter() - tic})
            if val["neg_elbo"] < best:
                best, best_state = val["neg_elbo"], copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return pd.DataFrame(rows), model.eval()


def vaelib_fit(config: vaelib.VAEConfig, splits: Splits) -> tuple[pd.DataFrame, nn.Module]:
    """vaelib.fit, with the history in the benchmark's columns."""
    model = vaelib.build_model(config)
    history = vaelib.fit(model, splits, config, progress=False).history
    history["val_neg_elbo"] = history["val_recon"] + history["val_kl"]
    return history, model


def summarise(name: str, config, history: pd.DataFrame, model, splits: Splits, n_train: int,
              gflops: float, target: float | None) -> dict:
    """One table row: speed, efficiency and validation-selected quality of one trainer."""
    per_epoch = history["train_seconds"].mean()
    images_per_s = n_train / per_epoch
    elapsed = history["seconds"].cumsum()
    reached = history.index[history["val_neg_elbo"] <= target] if target is not None else history.index[[]]
    return {
        "trainer": name, "hidden_dims": "-".join(map(str, config.hidden_dims)), "latent_dim": config.latent_dim,
        "batch_norm": config.batch_norm,
        "dropout": config.dropout, "scheduler": config.scheduler, "epochs": len(history),
        "s_per_epoch": per_epoch, "images_per_s": images_per_s,
        "matmul_fraction": images_per_s * vaelib.train_flops_per_image(model) / 1e9 / gflops,
        "wall_s": elapsed.iloc[-1], "best_val_neg_elbo": history["val_neg_elbo"].min(),
        "test_neg_elbo": vaelib.evaluate(model, splits.test.images)["neg_elbo"],
        "time_to_target_s": elapsed[reached[0]] if len(reached) else math.nan,
    }


def markdown(table: pd.DataFrame) -> str:
    """The results as a Markdown table with ratios to the reference row."""
    ref = table.iloc[0]
    lines = ["| trainer | hidden | latent | epochs | s/epoch | images/s | × ref | matmul use | test −ELBO | time to ref. quality | ÷ ref wall |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for _, r in table.iterrows():
        reached = math.isfinite(r.time_to_target_s)
        lines.append(f"| {r.trainer} | {r.hidden_dims} | {r.latent_dim} | {r.epochs} | {r.s_per_epoch:.2f} | {r.images_per_s:,.0f} | "
                     f"{r.images_per_s / ref.images_per_s:.2f} | {r.matmul_fraction:.0%} | {r.test_neg_elbo:.2f} | "
                     + (f"{r.time_to_target_s:.1f} s | {r.time_to_target_s / ref.wall_s:.2f} |" if reached else "not reached | – |"))
    return "\n".join(lines)


def main(argv=None) -> pd.DataFrame:
    """Run the four trainers and write the CSV/JSON; returns the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=20, help="epochs for (1) and (2)")
    parser.add_argument("--recipe-epochs", type=int, default=60, help="epochs for (3) and (4)")
    parser.add_argument("--subset", type=int, default=0, help="train on only this many images (smoke test)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    splits = vaelib.load_mnist()
    train_idx, _ = split_indices(len(splits.train) + len(splits.val), len(splits.val))
    if args.subset:
        train_idx = train_idx[:args.subset]
        splits = Splits(Split(splits.train.images[:args.subset], splits.train.labels[:args.subset]),
                        splits.val, splits.test, splits.fingerprint)
    gflops = matmul_gflops()
    seed = vaelib.VAEConfig(epochs=args.epochs, early_stopping=0, device="cpu")
    runs = [("(1) reference loop", seed, lambda: reference_loop(seed, splits, train_idx, args.epochs)),
            ("(2) vaelib.fit, seed config", seed, lambda: vaelib_fit(seed, splits))]
    for latent in (2, 20):
        recipe = vaelib.VAEConfig.recommended(latent_dim=latent, epochs=args.recipe_epochs, device="cpu")
        runs.append((f"({len(runs) + 1}) vaelib.fit, recommended", recipe, lambda r=recipe: vaelib_fit(r, splits)))
    rows, target = [], None
    for name, config, run in runs:
        print(f"running {name} (latent {config.latent_dim}, {config.epochs} epochs)", flush=True)
        history, model = run()
        if target is None:
            target = history["val_neg_elbo"].min()  # the quality the reference reaches in its epochs
        rows.append(summarise(name, config, history, model, splits, len(train_idx), gflops, target))
    table = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "train_speed.csv", index=False)
    machine = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "processor": cpu_name(),
               "cores": torch.get_num_threads(), "torch": torch.__version__, "python": platform.python_version(),
               "matmul_gflops": gflops, "matmul_shape": "(128, 784) @ (784, 256), float32",
               "flop_per_image_seed": vaelib.train_flops_per_image(vaelib.VAE(seed)), "target_val_neg_elbo": target,
               "train_images": len(train_idx), "command": "python bench/train_speed.py"}
    (args.out / "train_speed.json").write_text(json.dumps(machine, indent=2))
    print(f"\nmatmul: {gflops:.1f} GFLOP/s on {machine['processor']} ({machine['cores']} threads); "
          f"target = reference's best validation −ELBO = {target:.2f}\n")
    print(markdown(table))
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
