"""`make lab`: JupyterLab runs the latent-space chapter and its explorer.

Starts the venv's JupyterLab on 127.0.0.1 (as `make lab` does) on a copy of
the chapter that ends with the explorer's cell, runs every cell from the Run
menu in headless Chromium, moves a latent slider with the keyboard and checks
that the decoded image changes. The cells after the explorer are the book
build's to execute: here they would add half a minute and test nothing about
JupyterLab.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

import vaelib

ROOT = Path(__file__).resolve().parents[1]
CHAPTER = ROOT / "notebooks" / "05_latent_space.ipynb"
RUN_SECONDS = 600  # the chapter runs in about a minute with cached models
EXPLORER_CELL = "vaelib.LatentExplorer("  # the last cell of the copy


def up_to_the_explorer(path: Path) -> None:
    """Write the chapter, cut after the cell that makes the explorer."""
    notebook = nbformat.read(CHAPTER, as_version=4)
    last = max(
        i
        for i, cell in enumerate(notebook.cells)
        if cell.cell_type == "code" and EXPLORER_CELL in cell.source
    )
    notebook.cells = notebook.cells[: last + 1]
    nbformat.write(notebook, path)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on a copy of the chapter: (url, token)."""
    pytest.importorskip("jupyterlab")
    up_to_the_explorer(tmp_path / CHAPTER.name)
    # render every cell (JupyterLab 4 renders only those in view by default)
    settings = tmp_path / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text(
        json.dumps({"windowingMode": "none"})
    )
    port, token = free_port(), "vae-book-test"
    env = {
        **os.environ,
        # the chapter runs outside the checkout: point it at its models
        "VAELIB_CACHE_DIR": str(vaelib.default_cache_dir()),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }
    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={tmp_path}",
    ] + (["--allow-root"] if os.geteuid() == 0 else [])  # CI containers
    log = open(tmp_path / "lab.log", "w")
    server = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                status = f"{url}/api/status?token={token}"
                json.load(urllib.request.urlopen(status, timeout=1))
                break
            except OSError:
                assert server.poll() is None, (
                    tmp_path / "lab.log"
                ).read_text()
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start in 60 s")
        yield url, token, tmp_path
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # still shutting its kernel down
            server.kill()
            server.wait()
        log.close()


def decoded_image(page) -> str:
    """The src of the explorer's decoded digit (a PNG blob URL)."""
    return page.locator(".vaelib-decoded").first.get_attribute("src")


def kernel_busy(url: str, token: str) -> bool:
    """Whether the server's kernel is running something now.

    A kernel that is still starting counts as busy: listing the kernels at
    that moment can fail with 500 (jupyter_server reads the new kernel's
    last_activity before it is set; seen on a loaded machine).
    """
    try:
        kernels = json.load(
            urllib.request.urlopen(f"{url}/api/kernels?token={token}")
        )
    except urllib.error.HTTPError as e:
        if e.code == 500:
            return True
        raise
    return any(k["execution_state"] != "idle" for k in kernels)


def wait_until_idle(url: str, token: str, seconds: float) -> None:
    """Wait until the kernel has stayed idle for 5 s (it is busy per cell)."""
    deadline, idle_since = time.monotonic() + seconds, time.monotonic()
    while time.monotonic() < deadline:
        if kernel_busy(url, token):
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since > 5:
            return
        time.sleep(0.25)
    pytest.fail(f"the chapter did not finish in {seconds:.0f} s")


def test_jupyterlab_runs_the_chapter_and_the_slider_moves_the_digit(
    lab, browser
):
    url, token, folder = lab
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(f"{url}/lab/tree/{CHAPTER.name}?token={token}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    page.wait_for_selector(
        ".jp-Notebook-ExecutionIndicator[data-status='idle']",
        timeout=60_000,
    )
    page.get_by_role("menuitem", name="Run", exact=True).click()
    wait_until_idle(url, token, 60)  # the kernel has started
    page.get_by_text("Run All Cells", exact=True).click()
    deadline = time.monotonic() + 30
    while not kernel_busy(url, token):
        assert time.monotonic() < deadline, "Run All Cells started nothing"
        time.sleep(0.1)
    wait_until_idle(url, token, RUN_SECONDS)
    saved = folder / CHAPTER.name
    unsaved = saved.read_bytes()  # before the save, which may be quick
    page.keyboard.press("Control+s")  # then read what ran from the file
    deadline = time.monotonic() + 30
    while saved.read_bytes() == unsaved:
        assert time.monotonic() < deadline, "JupyterLab did not save"
        time.sleep(0.5)
    code = [
        c
        for c in json.loads(saved.read_text())["cells"]
        if c["cell_type"] == "code"
    ]
    errors = [
        o for c in code for o in c["outputs"] if o["output_type"] == "error"
    ]
    assert not errors, "\n".join(errors[0]["traceback"])
    assert all(c["execution_count"] for c in code), "not every cell ran"

    slider = page.locator(".vaelib-kernel-explorer .widget-slider").first
    slider.scroll_into_view_if_needed()
    before = decoded_image(page)
    readout = slider.locator(".widget-readout")
    value = readout.inner_text()
    slider.locator(".noUi-handle").focus()
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    page.wait_for_function(
        "([sel, old]) => document.querySelector(sel).src !== old",
        arg=[".vaelib-decoded", before],
        timeout=20_000,
    )
    assert readout.inner_text() != value
    assert decoded_image(page) != before
