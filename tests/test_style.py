"""Code that fits the page: ruff's format and lint, and the 79-column rule.

The book's code column shows about 80 characters at a 1280-px window
(tests/test_reader.py measures it), so every line the book shows must fit:
notebook code cells and the library source displayed by `show_source`.
"""

import json
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIDTH = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["ruff"][
    "line-length"
]


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )


def test_ruff_format_leaves_everything_unchanged():
    result = ruff("format", "--check", ".")
    assert result.returncode == 0, (
        f"{result.stdout}{result.stderr}\nRun `.venv/bin/ruff format .`"
    )


def test_ruff_lint_passes():
    result = ruff("check", ".")
    assert result.returncode == 0, (
        f"{result.stdout}{result.stderr}\nRun `.venv/bin/ruff check .`"
    )


def shown_lines() -> list[tuple[str, str]]:
    """(where, line) for every code line the book displays."""
    lines = []
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        for k, cell in enumerate(cells):
            tags = cell["metadata"].get("tags", [])
            if cell["cell_type"] != "code" or "remove-cell" in tags:
                continue
            for line in "".join(cell["source"]).splitlines():
                lines.append((f"{path.name} cell {k}", line))
    for path in sorted((ROOT / "vaelib").glob("*.py")):
        for n, line in enumerate(path.read_text().splitlines(), 1):
            lines.append((f"{path.relative_to(ROOT)}:{n}", line))
    return lines


def test_every_line_the_book_shows_fits_the_code_column():
    lines = shown_lines()
    assert len(lines) > 3000  # notebooks and library both read
    wide = [
        f"{where}: {len(line)}" for where, line in lines if len(line) > WIDTH
    ]
    assert not wide, f"lines over {WIDTH} characters: {wide}"
