"""Shared fixtures: real MNIST and small subsets of it.

MNIST comes from $VAELIB_DATA_DIR or the download folder. vaelib (and so
PyTorch) is imported by the fixtures that need it, not here: a pytest run
on a folder of its own (tests/test_project.py) then starts in a second.
"""

from __future__ import annotations

import functools
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import pytest

import book_stamp

if TYPE_CHECKING:
    import vaelib
    from vaelib.data import Split, Splits

matplotlib.use("Agg")


@pytest.fixture(scope="session")
def mnist() -> Splits:
    """The full 55k / 5k / 10k splits."""
    import vaelib

    return vaelib.load_mnist()


def subset(split: Split, n: int) -> Split:
    from vaelib.data import Split

    return Split(split.images[:n], split.labels[:n])


@pytest.fixture(scope="session")
def small(mnist) -> Splits:
    """2,000 training, 500 validation and 500 test images of real MNIST.

    Models train on them in seconds.
    """
    from vaelib.data import Splits

    return Splits(
        subset(mnist.train, 2000),
        subset(mnist.val, 500),
        subset(mnist.test, 500),
        fingerprint=mnist.fingerprint + "-small",
    )


@pytest.fixture
def tiny_config() -> vaelib.VAEConfig:
    """The seed architecture, a few epochs, on the CPU."""
    import vaelib

    return vaelib.VAEConfig(epochs=4, batch_size=100, device="cpu")


def running_in_ci() -> bool:
    """CI sets CI=true (GitHub Actions, GitLab and .ci/run do)."""
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI a skipped test is a failed one.

    A missing browser or an unbuilt book must not pass quietly.
    """
    outcome = yield
    report = outcome.get_result()
    if report.skipped and running_in_ci() and not hasattr(report, "wasxfail"):
        reason = (
            report.longrepr[2]
            if isinstance(report.longrepr, tuple)
            else str(report.longrepr)
        )
        report.outcome = "failed"
        report.longrepr = (
            f"Skipped under CI ({reason}); CI must run every test. "
            "Fix what it needs."
        )


def pytest_collection_modifyitems(config, items):
    """Check unchanged chapters from the last book build's executed copies.

    Chapters the last passing book build executed, unchanged since, are
    checked from its executed copies instead of executed a second time (see
    tests/book_stamp.py); the others run under nbmake.
    """
    for item in items:
        if getattr(item, "nbmake", False):
            notebook = Path(item.config.rootdir) / item.filename
            if book_stamp.fresh(notebook):
                item.runtest = functools.partial(
                    book_stamp.check_executed, notebook
                )
                item.user_properties.append(("checked", "from the book build"))


def pytest_terminal_summary(terminalreporter):
    items = [
        r
        for r in terminalreporter.stats.get("passed", [])
        + terminalreporter.stats.get("failed", [])
        if ("checked", "from the book build") in r.user_properties
    ]
    if items:
        terminalreporter.write_line(
            f"{len(items)} chapter(s) checked from the executed copies of "
            f"the last passing `make book` (tests/book_stamp.py), "
            f"not executed again"
        )


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser():
    """Debian's headless Chromium, driven by Playwright (never downloaded)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(
            "Chromium is not installed (apt-get install chromium); "
            "CI installs it"
        )
    playwright = pytest.importorskip("playwright.sync_api")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser
        browser.close()


@pytest.fixture
def tiny_vae():
    """A 4-pixel VAE with a 1-D latent and 6 images (tests/integrate.py).

    Built fresh for each test, so no test sees another's changes.
    """
    from integrate import tiny_vae_and_images

    return tiny_vae_and_images()
