"""The book build's record of what it executed.

`make book` writes it, `make test` reads it. `jupyter-book build` executes
every chapter, and with warnings as errors a chapter that raises fails the
build. After a build that passed, `python tests/book_stamp.py` records a hash
of each chapter's inputs (the notebook, the library, the configuration, the
benchmark results the appendix reads). `make test` then checks the executed
copies of chapters whose inputs are unchanged instead of executing them a
second time; a chapter that changed since, or every chapter when there is no
build, is executed by nbmake.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def stamp_path(root: Path = ROOT) -> Path:
    return root / "_build" / "executed.json"


# bench results measured on the built pages; no chapter reads them
MEASURED_FROM_PAGES = {"explorer_speed.csv"}


def executed_copy(notebook: Path, root: Path = ROOT) -> Path:
    """Where myst-nb leaves the executed notebook of a chapter."""
    return root / "_build" / "jupyter_execute" / notebook.relative_to(root)


def inputs_hash(notebook: Path, root: Path = ROOT) -> str:
    """Hash of every repository file a chapter's execution depends on."""
    results = [
        p
        for p in sorted((root / "vaelib" / "bench_results").glob("*"))
        if p.name not in MEASURED_FROM_PAGES
    ]
    shared = [
        *sorted((root / "vaelib").glob("*.py")),
        *sorted((root / "vaelib" / "static").glob("*")),
        *results,
        root / "_config.yml",
        root / "requirements.lock",
        root / "pyproject.toml",
        *sorted((root / "book" / "_ext").glob("*.py")),
    ]
    h = hashlib.sha256()
    for path in (notebook, *shared):
        if path.is_file():
            h.update(
                str(path.relative_to(root)).encode()
                + b"\0"
                + path.read_bytes()
            )
    return h.hexdigest()


def write(root: Path = ROOT) -> dict:
    """Record every chapter the build executed (after a build that passed)."""
    stamp = {}
    for notebook in sorted((root / "notebooks").glob("*.ipynb")):
        check_executed(notebook, root)
        stamp[notebook.name] = inputs_hash(notebook, root)
    stamp_path(root).write_text(json.dumps(stamp, indent=1))
    return stamp


def fresh(notebook: Path, root: Path = ROOT) -> bool:
    """Whether the last passing build ran this chapter exactly as it is now."""
    try:
        stamp = json.loads(stamp_path(root).read_text())
    except (OSError, ValueError):
        return False
    return (
        stamp.get(notebook.name) == inputs_hash(notebook, root)
        and executed_copy(notebook, root).is_file()
    )


def check_executed(notebook: Path, root: Path = ROOT) -> None:
    """Raise AssertionError unless the executed copy ran cleanly.

    That is: it ran every code cell and holds no error output.
    """
    path = executed_copy(notebook, root)
    if not path.is_file():
        raise AssertionError(
            f"{path} is missing: "
            f"the book build did not execute {notebook.name}"
        )
    cells = [
        c
        for c in json.loads(path.read_text())["cells"]
        if c["cell_type"] == "code" and c["source"]
    ]
    for i, cell in enumerate(cells):
        errors = [
            o
            for o in cell.get("outputs", [])
            if o.get("output_type") == "error"
        ]
        if errors or cell.get("execution_count") is None:
            what = (
                f"raised {errors[0].get('ename')}: {errors[0].get('evalue')}"
                if errors
                else "did not run"
            )
            raise AssertionError(
                f"{notebook.name}: code cell {i + 1} {what} "
                f"in the book build ({path})"
            )


if __name__ == "__main__":
    written = write()
    print(
        f"{len(written)} executed chapters recorded in {stamp_path()}; "
        f"`make test` checks them without executing them again",
        file=sys.stderr,
    )
