"""Train once, load ever after: runs cached in a folder per model.

The folder is keyed by config, data, code and PyTorch. A cached model is
served only if everything that decides its weights is unchanged: the config
(normalised, so beta=1 and beta=1.0 are one model), the exact data
(`Splits.fingerprint`), what the code of the modules that train it does
(`TRAINING_SOURCES`; comments, layout and docstrings are left out) and the
PyTorch version. A run folder that cannot be read back is retrained, with a
warning: the cache heals itself.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import json
import os
import shutil
import time
import warnings
from pathlib import Path

import pandas as pd
import torch
from filelock import FileLock, Timeout

from .checkpoint import (
    CheckpointError,
    atomic_write,
    file_digest,
    load_checkpoint,
)
from .config import VAEConfig, resolve_device
from .data import Splits, project_root
from .model import VAE, build_model
from .train import FitResult, fit

CACHE_ENV = "VAELIB_CACHE_DIR"
# seconds to wait for another process training the same model
LOCK_TIMEOUT_ENV = "VAELIB_LOCK_TIMEOUT"
LOCK_TIMEOUT = 3 * 3600.0
# The modules whose code decides a trained model's weights (validation picks
# the best epoch).
TRAINING_SOURCES = (
    "config.py",
    "data.py",
    "model.py",
    "losses.py",
    "likelihoods.py",
    "flows.py",
    "priors.py",
    "train.py",
    "evaluate.py",
    "repro.py",
)
RUN_FILES = ("best.pt", "last.pt", "metrics.csv", "config.json", "done.json")
LIKELIHOOD_TAGS = {
    "bernoulli": "",
    "continuous_bernoulli": "cb",
    "gaussian": "gauss",
    "gaussian_learned": "gausslearned",
    "discretized_logistic": "logistic",
}


class CacheError(RuntimeError):
    """The model cache cannot be used.

    A lock is held too long, or a folder cannot be written.
    """


def default_cache_dir() -> Path:
    """Where runs are cached.

    $VAELIB_CACHE_DIR, else .cache/models in the checkout, else
    ~/.cache/vaelib/models.
    """
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    root = project_root()
    return (
        root / ".cache" / "models"
        if root
        else Path.home() / ".cache" / "vaelib" / "models"
    )


# AST fields that Pythons after 3.11 added (PEP 695's type parameters): left
# out, so a file hashes the same under every Python (Colab runs 3.12)
_NEWER_FIELDS = frozenset({"type_params"})
_ABSENT = object()  # a field a node does not have (no AST value is this)


def code_text(path: str | Path) -> str:
    """A Python file's code without its comments, layout and docstrings."""
    return _code_text(Path(path).read_text(), str(path))


def ast_text(node) -> str:
    """ast.dump(node) as Python 3.11 writes it, under any Python >= 3.11.

    Newer Pythons add fields (_NEWER_FIELDS) and, from 3.13, leave empty
    ones out; both would change every hash of the same code.
    """
    if isinstance(node, list):
        return f"[{', '.join(ast_text(item) for item in node)}]"
    if not isinstance(node, ast.AST):
        return repr(node)
    cls, fields = type(node), []
    for name in node._fields:
        value = getattr(node, name, _ABSENT)
        # absent, or an optional field left empty: 3.11 omits both
        absent = value is _ABSENT or (
            value is None and getattr(cls, name, _ABSENT) is None
        )
        if name not in _NEWER_FIELDS and not absent:
            fields.append(f"{name}={ast_text(value)}")
    return f"{cls.__name__}({', '.join(fields)})"


@functools.lru_cache(maxsize=64)
def _code_text(source: str, filename: str) -> str:
    """code_text of this source; remembered, as every model hashes the same."""
    tree = ast.parse(source, filename=filename)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return ast_text(tree)


def code_hash(paths, salt: str = "") -> str:
    """Hash (16 hex digits) of `salt` and what the Python files at `paths` do.

    Comments, formatting and docstrings are left out (see `code_text`):
    re-wrapping a line or a docstring does not retrain a model or stale a
    benchmark; changing a statement does.
    """
    h = hashlib.sha256(salt.encode())
    for path in paths:
        h.update(
            b"\0" + Path(path).name.encode() + b"\0" + code_text(path).encode()
        )
    return h.hexdigest()[:16]


def training_code_hash() -> str:
    """Hash of the PyTorch version and of the code of TRAINING_SOURCES.

    Like `code_hash`, 16 hex digits.
    """
    torch_version = torch.__version__.split("+")[0]
    return code_hash(training_sources(), torch_version)


def training_sources() -> list[Path]:
    """The files named by TRAINING_SOURCES, beside this module."""
    return [Path(__file__).parent / name for name in TRAINING_SOURCES]


def run_name(config: VAEConfig, splits: Splits) -> str:
    """What sets this run apart from the book's recipe, readable.

    For example latent10-beta4-seed1-e12-freebits0.5.
    """
    c, recipe = config, VAEConfig.recommended()
    parts = [
        f"latent{c.latent_dim}",
        f"beta{c.beta:g}",
        f"seed{c.seed}",
        f"e{c.epochs}",
    ]
    parts += (
        [f"h{'x'.join(map(str, c.hidden_dims))}"]
        if c.hidden_dims != recipe.hidden_dims
        else []
    )
    parts += ["bn"] if c.batch_norm else []
    parts += [f"drop{c.dropout:g}"] if c.dropout else []
    parts += [f"lr{c.lr:g}"] if c.lr != recipe.lr else []
    parts += (
        [f"batch{c.batch_size}"] if c.batch_size != recipe.batch_size else []
    )
    parts += [c.activation] if c.activation != recipe.activation else []
    parts += [c.scheduler] if c.scheduler != recipe.scheduler else []
    parts += [f"cond{c.num_classes}"] if c.num_classes else []
    parts += [f"warmup{c.kl_warmup}"] if c.kl_warmup else []
    parts += [f"freebits{c.free_bits:g}"] if c.free_bits else []
    parts += [f"iaf{c.flow_steps}"] if c.flow_steps else []
    parts += (
        [f"{c.prior}{c.prior_components}"] if c.prior != "standard" else []
    )
    parts += [f"tc{c.tc_penalty:g}"] if c.tc_penalty else []
    tag = LIKELIHOOD_TAGS[c.likelihood]
    parts += (
        [f"{tag}{c.components if c.components > 1 else ''}"] if tag else []
    )
    parts += [splits.tag] if splits.tag else []
    return "-".join(parts)


def run_dir_for(
    config: VAEConfig, splits: Splits, cache_dir: str | Path | None = None
) -> Path:
    """The cache folder of this config trained on this data by this code.

    Its name is <run_name>-<hash>.
    """
    text = f"{config.key()}/{splits.fingerprint}/{training_code_hash()}"
    key = hashlib.sha256(text.encode()).hexdigest()[:12]
    return (
        Path(cache_dir or default_cache_dir())
        / f"{run_name(config, splits)}-{key}"
    )


def _verified_summary(run_dir: Path) -> dict:
    """done.json of a finished run, checked against the recorded checksums.

    It is returned once it and every file it lists match their checksums.
    Raises CheckpointError if any file of the run is missing, unreadable or
    changed since training.
    """
    try:
        summary = json.loads((run_dir / "done.json").read_text())
        if summary.pop("self_sha256") != _summary_digest(summary):
            raise CheckpointError(
                f"{run_dir / 'done.json'} does not match its own checksum: "
                f"it was changed or damaged after training."
            )
        for name, digest in summary["sha256"].items():
            if file_digest(run_dir / name) != digest:
                raise CheckpointError(
                    f"{run_dir / name} does not match the checksum recorded "
                    f"when the run finished: it was changed or damaged after "
                    f"training."
                )
        return summary
    except CheckpointError:
        raise
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise CheckpointError(
            f"The cached run {run_dir} cannot be read "
            f"({type(e).__name__}: {e})."
        ) from e


def is_cached(run_dir: str | Path) -> bool:
    """Whether a finished run is there, every file matching its checksum.

    No model is loaded.
    """
    try:
        _verified_summary(Path(run_dir))
    except CheckpointError:
        return False
    return True


def load_run(
    run_dir: str | Path, device: str = "auto"
) -> tuple[VAE, FitResult]:
    """A finished run's best model (in eval mode) and its training record.

    Raises CheckpointError if any file of the run is missing, truncated or
    does not match the checksums recorded when the run finished.
    """
    run_dir = Path(run_dir)
    summary = _verified_summary(run_dir)
    try:
        history = pd.read_csv(run_dir / "metrics.csv")
        best_epoch, best_val = (
            int(summary["best_epoch"]),
            float(summary["best_val_loss"]),
        )
        stopped_early = bool(summary["stopped_early"])
    except (
        OSError,
        ValueError,
        KeyError,
        TypeError,
        pd.errors.ParserError,
    ) as e:
        raise CheckpointError(
            f"The cached run {run_dir} cannot be read "
            f"({type(e).__name__}: {e})."
        ) from e
    state = load_checkpoint(
        run_dir / "best.pt", map_location=resolve_device(device)
    )
    config = VAEConfig.from_dict(state["config"]).replace(device=device)
    model = VAE(config).to(resolve_device(device))
    model.load_state_dict(state["model"])
    model.eval()
    return model, FitResult(
        history, best_epoch, best_val, stopped_early, run_dir, trained=False
    )


def _lock(run_dir: Path) -> FileLock:
    """The run's lock, acquired.

    Waits up to $VAELIB_LOCK_TIMEOUT seconds for another process.
    """
    lock = FileLock(f"{run_dir}.lock")
    try:
        lock.acquire(timeout=0)
        return lock
    except Timeout:
        pass
    timeout = float(os.environ.get(LOCK_TIMEOUT_ENV, LOCK_TIMEOUT))
    print(
        f"Another process is training {run_dir.name}; waiting for it "
        f"(at most {timeout:.0f} s).",
        flush=True,
    )
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise CacheError(
            f"Waited {timeout:.0f} s for another process to finish training "
            f"{run_dir} (lock {run_dir}.lock). Stop that process or wait for "
            f"it; set "
            f"{LOCK_TIMEOUT_ENV} to wait longer."
        ) from None
    return lock


def _heal(run_dir: Path, error: Exception) -> None:
    """Remove a run folder that cannot be used, saying why.

    The run is then trained again from scratch.
    """
    warnings.warn(
        f"Retraining {run_dir.name}: the cached run cannot be used ({error})",
        stacklevel=3,
    )
    shutil.rmtree(run_dir, ignore_errors=True)


def _summary_digest(summary: dict) -> str:
    """sha256 of done.json's content (without this digest itself)."""
    return hashlib.sha256(
        json.dumps(summary, sort_keys=True).encode()
    ).hexdigest()


def _finish(
    run_dir: Path, config: VAEConfig, splits: Splits, result: FitResult
) -> None:
    """Write config.json, then done.json with checksums of the run's files."""
    atomic_write(
        run_dir / "config.json",
        lambda tmp: Path(tmp).write_text(
            json.dumps(config.to_dict(), indent=2)
        ),
    )
    summary = {
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "stopped_early": result.stopped_early,
        "data_fingerprint": splits.fingerprint,
        "code_hash": training_code_hash(),
        "torch": torch.__version__,
        "finished": time.time(),
        "sha256": {
            name: file_digest(run_dir / name)
            for name in RUN_FILES
            if name != "done.json"
        },
    }
    summary["self_sha256"] = _summary_digest(summary)
    atomic_write(
        run_dir / "done.json",
        lambda tmp: Path(tmp).write_text(json.dumps(summary, indent=2)),
    )


def train_or_load(
    config: VAEConfig,
    splits: Splits,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> tuple[VAE, FitResult]:
    """Load the cached run for (config, data, code), or train it.

    A finished run is loaded; otherwise the model is trained (resuming if
    cut off). A lock file beside the run folder makes a second process that
    wants the same model (another kernel, a parallel build) wait for the
    first to finish and then load its result. A run that cannot be read
    back (truncated, corrupt, changed by hand) is trained again, with a
    warning. `result.trained` says whether this call trained.
    """
    run_dir = run_dir_for(config, splits, cache_dir)
    try:
        run_dir.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CacheError(
            f"Cannot create the model cache folder {run_dir.parent} ({e}). "
            f"Point {CACHE_ENV} at a writable folder."
        ) from e
    lock = _lock(run_dir)
    try:
        if (run_dir / "done.json").exists():
            try:
                return load_run(run_dir, config.device)
            except CheckpointError as e:
                _heal(run_dir, e)
        model = build_model(config)
        try:
            result = fit(
                model,
                splits,
                config,
                run_dir=run_dir,
                resume=True,
                progress=progress,
            )
        except CheckpointError as e:
            # an unfinished run whose last.pt cannot be read
            _heal(run_dir, e)
            model = build_model(config)
            result = fit(
                model,
                splits,
                config,
                run_dir=run_dir,
                resume=True,
                progress=progress,
            )
        _finish(run_dir, config, splits, result)
        return model, result
    finally:
        lock.release()
