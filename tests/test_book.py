"""Checks on the built book (`make book` output).

Skipped until the book has been built.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

pytestmark = pytest.mark.skipif(
    not HTML.is_dir(), reason="book not built; run `make book` first"
)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_captioned_figure_cell_rendered_an_image(path):
    cells = json.loads(path.read_text())["cells"]
    expected = sum(
        1
        for c in cells
        if c["cell_type"] == "code"
        and "figure" in c["metadata"].get("mystnb", {})
    )
    page = (HTML / "notebooks" / f"{path.stem}.html").read_text()
    figures = re.findall(r'<figure[^>]*>\s*<img[^>]+src="[^"]+\.png"', page)
    assert len(figures) == expected, (
        f"{path.name}: {len(figures)} rendered figures, {expected} expected"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_page_shows_no_errors_or_raw_markdown(path):
    page = (HTML / "notebooks" / f"{path.stem}.html").read_text()
    # the text after each cell's output marker, up to the next cell's input
    outputs = [
        part.split('class="cell_input', 1)[0]
        for part in page.split('class="cell_output')[1:]
    ]
    assert outputs, "no cell outputs on the page"
    for bad in ("Traceback (most recent call last)", "|---|"):
        assert not any(bad in out for out in outputs), (
            f"{path.name} shows {bad!r} in an output"
        )
    # Markdown left unrendered (not Python's ** in highlighted code)
    raw_bold = re.compile(r"(?<!>)\*\*(?!<)")
    assert not any(raw_bold.search(out) for out in outputs), (
        f"{path.name} shows unrendered ** in an output"
    )
