"""Helper process for tests/test_faults.py: training runs killed on purpose.

Not a test module. `python tests/fault_child.py kill OUT SCENARIOS_JSON` trains
a tiny model once uninterrupted (OUT/reference) and, per scenario, once killed
with SIGKILL at the scenario's point and then resumed (OUT/<name>). Each run
happens in a forked child of this single-threaded process, so a kill ends that
child only. `python tests/fault_child.py concurrent CACHE` runs
`python -m vaelib`'s main on three tiny book models.
"""

import json
import os
import signal
import sys
import traceback

import torch

# before any parallel op: no thread pool, so forking is safe
torch.set_num_threads(1)

import vaelib  # noqa: E402
from vaelib import book, checkpoint, train  # noqa: E402
from vaelib.data import Split, Splits  # noqa: E402

TINY = vaelib.VAEConfig(
    input_shape=(1, 4, 4),
    hidden_dims=(8,),
    latent_dim=2,
    batch_norm=True,
    dropout=0.1,
    epochs=6,
    batch_size=16,
    early_stopping=0,
    lr=1e-2,
    device="cpu",
)
STEPS_PER_EPOCH = 6  # 96 training images in batches of 16


def synthetic_splits(seed: int = 0) -> Splits:
    """96 / 32 / 32 random black-and-white 4 x 4 images.

    A model trains on them in a fraction of a second.
    """
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(160, 1, 4, 4, generator=g) > 0.5).float()
    y = torch.zeros(160, dtype=torch.long)
    return Splits(
        Split(x[:96], y[:96]),
        Split(x[96:128], y[96:128]),
        Split(x[128:], y[128:]),
        fingerprint=f"synthetic{seed}",
    )


def die_at(kind: str, n: int) -> None:
    """SIGKILL this process at the n-th (1-based) event of `kind`.

    "step" a training step, "rename" inside a file write (temp file written,
    not yet renamed), "metrics" inside a write of metrics.csv, "after_save"
    right after a checkpoint file was written (between best.pt and last.pt).
    """
    count = [0]

    def tick():
        count[0] += 1
        if count[0] == n:
            os.kill(os.getpid(), signal.SIGKILL)

    if kind == "step":
        real_loss = train.vae_loss

        def loss(*args, **kwargs):
            tick()
            return real_loss(*args, **kwargs)

        train.vae_loss = loss
    elif kind in ("rename", "metrics"):
        # "metrics": count only the renames onto metrics.csv
        real_replace = os.replace

        def replace(src, dst):
            if kind == "rename" or str(dst).endswith("metrics.csv"):
                tick()
            return real_replace(src, dst)

        checkpoint.os.replace = replace
    elif kind == "after_save":
        real_save = train.save_checkpoint

        def save(path, state):
            real_save(path, state)
            tick()

        train.save_checkpoint = save
    else:
        raise ValueError(kind)


def warm_up(path: str) -> None:
    """Pay PyTorch's and pandas' lazy first-call set-up once, before forking.

    Without a backward pass: autograd's engine must not have run in a process
    that forks (it refuses where CUDA is present).
    """
    model, splits = vaelib.build_model(TINY), synthetic_splits()
    out = model(splits.train.images[:16])
    vaelib.vae_loss(out.logits, splits.train.images[:16], out.mu, out.logvar)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    train.make_optimizer(model, TINY).step()
    vaelib.evaluate(model, splits.val.images)
    checkpoint.save_checkpoint(
        path, {"model": model.state_dict(), "config": TINY.to_dict()}
    )
    train.pd.DataFrame([{"epoch": 1}]).to_csv(path + ".csv")


def in_child(run_dir: str, kill: tuple[str, int] | None) -> int:
    """Train (resuming) in a forked child; its wait status."""
    pid = os.fork()
    if pid == 0:
        try:
            if kill:
                die_at(*kill)
            train.fit(
                vaelib.build_model(TINY),
                synthetic_splits(),
                TINY,
                run_dir=run_dir,
                resume=True,
                progress=False,
            )
        except BaseException:
            # to the parent's stderr, which the test shows
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    return os.waitpid(pid, 0)[1]


def kill_scenarios(out: str, scenarios: list) -> dict:
    """Per scenario: whether the kill happened and the resumed run finished."""
    warm_up(os.path.join(out, "warm.pt"))
    report = {"reference": in_child(os.path.join(out, "reference"), None)}
    for name, kind, n in scenarios:
        run_dir = os.path.join(out, name)
        killed = in_child(run_dir, (kind, n))
        resumed = in_child(run_dir, None)
        report[name] = {
            "killed": (
                os.WIFSIGNALED(killed)
                and os.WTERMSIG(killed) == signal.SIGKILL
            ),
            "resumed": resumed,
        }
    return report


def tiny_book_models() -> list:
    """Three models of `python -m vaelib`'s kind.

    Each is small enough to train in a second.
    """
    tiny = vaelib.VAEConfig.recommended(
        epochs=1, hidden_dims=(16,), device="cpu"
    )
    return [
        book.BookModel(f"tiny-seed{s}", tiny.replace(seed=s)) for s in range(3)
    ]


if __name__ == "__main__":
    if sys.argv[1] == "kill":
        print(json.dumps(kill_scenarios(sys.argv[2], json.loads(sys.argv[3]))))
    elif sys.argv[1] == "concurrent":
        os.environ[vaelib.cache.CACHE_ENV] = sys.argv[2]
        book.models = tiny_book_models
        book.main(["--jobs", "1"])
