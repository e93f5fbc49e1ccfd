"""Every chapter runs the way Colab runs it: alone, with vaelib installed.

Each notebook is copied into an empty folder and executed by a Python whose
vaelib is a regular (non-editable) install of this checkout, with no
checkout around the notebook. The other packages come from the project's
venv, and the cache points at the already-trained models (nothing else is
shared), so this takes about as long as the book's own execution. It is
slow, so `make test` leaves it out; `make test-standalone` (and CI) run it.
"""

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

import vaelib

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("*.ipynb"))
pytestmark = pytest.mark.standalone


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A Python with vaelib installed from this checkout, not editable."""
    home = tmp_path_factory.mktemp("installed")
    subprocess.run(
        [sys.executable, "-m", "venv", str(home / "venv")], check=True
    )
    python = home / "venv" / "bin" / "python"
    packages = subprocess.run(
        [str(python), "-c", "import site; print(site.getsitepackages()[0])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # the pinned dependencies, borrowed from the project's venv (a plain
    # path: its editable-install hook is not run)
    (Path(packages) / "project-venv.pth").write_text(
        site.getsitepackages()[0] + "\n"
    )
    # built from a copy, so that no build/ folder lands in the checkout
    source = home / "source"
    shutil.copytree(
        ROOT / "vaelib",
        source / "vaelib",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps"]
        + ["--no-build-isolation", str(source)],
        check=True,
    )
    where = subprocess.run(
        [str(python), "-c", "import vaelib; print(vaelib.__file__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=home,
    ).stdout.strip()
    assert Path(where).is_relative_to(packages), where  # not the checkout
    return python


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.stem)
def test_chapter_runs_alone_with_vaelib_installed(
    installed, chapter, tmp_path
):
    notebook = tmp_path / chapter.name
    shutil.copy(chapter, notebook)
    env = {
        **os.environ,
        "VAELIB_CACHE_DIR": str(vaelib.default_cache_dir()),
        "PYTHONNOUSERSITE": "1",
    }
    result = subprocess.run(
        [str(installed), "-m", "nbconvert", "--to", "notebook"]
        + ["--execute", "--ExecutePreprocessor.timeout=900"]
        + ["--output", "executed.ipynb", notebook.name],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    executed = json.loads((tmp_path / "executed.ipynb").read_text())
    ran = [
        c["execution_count"]
        for c in executed["cells"]
        if c["cell_type"] == "code"
    ]
    assert all(ran), "a code cell did not run"
    # nothing was written next to the notebook but its executed copy
    left = {p.name for p in tmp_path.iterdir()}
    assert left <= {notebook.name, "executed.ipynb"}, left
