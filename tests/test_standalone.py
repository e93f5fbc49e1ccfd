"""Every chapter runs the way Colab runs it: alone, with vaelib installed.

The check has two halves, and neither executes a chapter twice.

- The book build executes every chapter in an empty temporary folder
  (`execute.run_in_temp` in _config.yml): a chapter that reads or writes a
  file beside itself, or imports something only the checkout has (bench/,
  tests/), fails the build.
- What the build cannot see is the install. Its kernel imports the
  checkout's vaelib (an editable install), which finds its package data in
  the checkout whether a wheel would ship it or not. This file installs
  vaelib from this checkout the way a reader does (a regular, non-editable
  install) and checks, from an empty folder: the installed package holds
  every file the checkout's does, every module imports, the functions that
  read package data work, and every import line of every chapter runs.

Executing each chapter again here, as this test once did, doubled the
book's execution time in CI and checked nothing these two halves miss.
"""

import ast
import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(python, its site-packages): vaelib installed from this checkout."""
    home = tmp_path_factory.mktemp("installed")
    # no pip of its own: this venv's pip installs into it (--python)
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(home / "venv")],
        check=True,
    )
    python = home / "venv" / "bin" / "python"
    packages = Path(
        subprocess.run(
            [
                str(python),
                "-c",
                "import site; print(site.getsitepackages()[0])",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    # the pinned dependencies, borrowed from the project's venv (a plain
    # path: its editable-install hook is not run)
    (packages / "project-venv.pth").write_text(
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
        [sys.executable, "-m", "pip", "--python", str(python), "install"]
        + ["--quiet", "--no-deps"]
        + ["--no-build-isolation", "--disable-pip-version-check"]
        + [str(source)],
        check=True,
    )
    return python, packages


def run_alone(python: Path, script: str, folder: Path, *args: str):
    """Run `script` with `python` in an empty `folder`, outside the checkout.

    Its model cache is an empty folder beside `folder`: nothing here trains.
    """
    folder.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PYTHONNOUSERSITE": "1",
        "VAELIB_CACHE_DIR": str(folder.parent / "empty-cache"),
    }
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [str(python), "-c", script, *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
    )


def tracked_package_files() -> set[str]:
    """The files of vaelib/ that git tracks, relative to vaelib/."""
    listed = subprocess.run(
        ["git", "ls-files", "vaelib"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return {str(Path(name).relative_to("vaelib")) for name in listed}


def chapter_imports(chapter: Path) -> list[str]:
    """Every import statement in a chapter's code cells, as source lines."""
    lines = []
    for cell in nbformat.read(chapter, as_version=4).cells:
        if cell.cell_type != "code":
            continue
        # magics (%matplotlib, %pip) are IPython's, not Python's
        code = "\n".join(
            line
            for line in cell.source.splitlines()
            if not line.lstrip().startswith(("%", "!"))
        )
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.Import | ast.ImportFrom):
                lines.append(ast.unparse(node))
    return lines


def test_the_book_build_executes_chapters_in_an_empty_folder():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["execute"]["run_in_temp"] is True


# run once, alone, by the installed Python: one interpreter start (about 3 s
# with torch) instead of one per check
ALONE = """
import importlib, json, pkgutil, sys, traceback
import vaelib
from vaelib import benchmarks, explorer

report = {"vaelib": vaelib.__file__, "chapters": {}}
# not __main__: importing it trains the book's models
for m in pkgutil.iter_modules(vaelib.__path__):
    if m.name != "__main__":
        importlib.import_module(f"vaelib.{m.name}")
for path in benchmarks.results_dir().glob("*.csv"):
    assert len(benchmarks.read_table(path.stem)), path
for path in benchmarks.results_dir().glob("*.json"):
    assert benchmarks.read_stamp(path.stem), path
assert not benchmarks.in_checkout()
for name in ("explorer.js", "pad_widget.js", "explorer.css"):
    assert (explorer.STATIC / name).read_text(), name
assert "function" in explorer._pad_module()
report["book_models"] = len(vaelib.book.models())
for name, code in json.loads(sys.argv[1]).items():
    try:
        exec(code, {})
        report["chapters"][name] = None
    except Exception:
        report["chapters"][name] = traceback.format_exc()
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def alone(installed, tmp_path_factory) -> dict:
    """What the installed vaelib reports from an empty folder (ALONE)."""
    python, _ = installed
    folder = tmp_path_factory.mktemp("alone") / "work"
    imports = {c.stem: "\n".join(chapter_imports(c)) for c in CHAPTERS}
    result = run_alone(python, ALONE, folder, json.dumps(imports))
    assert result.returncode == 0, result.stderr[-4000:]
    # nothing was written into the folder the chapters' imports ran in
    assert not list(folder.iterdir())
    return json.loads(result.stdout.splitlines()[-1])


def test_installed_vaelib_is_not_the_checkout(installed, alone):
    _, packages = installed
    assert Path(alone["vaelib"]).is_relative_to(packages), alone["vaelib"]


def test_installed_package_holds_every_tracked_file(installed):
    _, packages = installed
    shipped = {
        str(path.relative_to(packages / "vaelib"))
        for path in (packages / "vaelib").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    missing = tracked_package_files() - shipped
    assert not missing, (
        f"{sorted(missing)} are in the checkout's vaelib/ but not in the "
        "installed package: add them to [tool.setuptools.package-data] in "
        "pyproject.toml"
    )


def test_installed_vaelib_imports_and_reads_its_data(alone):
    # every module imported and every data file read, or `alone` failed
    assert alone["book_models"] > 0


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.stem)
def test_chapter_imports_run_with_vaelib_installed(alone, chapter):
    assert any("vaelib" in line for line in chapter_imports(chapter))
    error = alone["chapters"][chapter.stem]
    assert error is None, error
