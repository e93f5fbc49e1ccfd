"""The built book as a reader sees it, offline, in Chromium at 1280 px.

Maths renders without internet (MathJax is served from the site), every
code cell fits its column without sideways scrolling, and the front page
shows the figure and the chapters with the times this build measured.
"""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
WIDTH = 79  # characters: pyproject's ruff line-length (tests/test_style.py)
CHAPTERS = [
    entry["file"]
    for part in yaml.safe_load((ROOT / "_toc.yml").read_text())["parts"]
    for entry in part["chapters"]
    if entry["file"].startswith("notebooks/")
]
MATHS_PAGE = "notebooks/02_elbo"  # the page with the most equations


@pytest.fixture(autouse=True)
def built_book():
    if not (HTML / f"{MATHS_PAGE}.html").exists():
        pytest.skip("book not built; run `make book` first")


@pytest.fixture(autouse=True)
def close_pages(browser):
    """Close each test's pages: open ones go on running their scripts."""
    yield
    for context in browser.contexts:
        context.close()


def offline_page(browser, doc: str):
    """A 1280-px page of the built book with every network request refused."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    refused = []

    def only_files(route):
        if route.request.url.startswith("file:"):
            return route.continue_()
        refused.append(route.request.url)
        return route.abort()

    page.route("**/*", only_files)
    page.goto((HTML / f"{doc}.html").as_uri())
    page.refused = refused
    return page


TYPESET = """async () => {
    if (!window.MathJax || !MathJax.startup) return -1;
    await MathJax.startup.promise;
    return document.querySelectorAll('mjx-container').length;
}"""

# prose only: code cells may legitimately hold a backslash-parenthesis
RAW_TEX = """() => {
    const article = document.querySelector('article').cloneNode(true);
    article.querySelectorAll('pre, code, mjx-container, script, style')
        .forEach(e => e.remove());
    const text = article.textContent;
    return ['\\\\(', '\\\\[', '$$'].filter(s => text.includes(s));
}"""

# code cells, and the library source show_source displays in outputs
CODE = "div.cell_input pre, div.cell_output .text_html .highlight pre"
CODE_CELLS = """() => [...document.querySelectorAll('CODE')].map(
    pre => {
        const style = getComputedStyle(pre);
        const probe = document.createElement('span');
        probe.textContent = 'x'.repeat(100);
        pre.appendChild(probe);
        const char = probe.getBoundingClientRect().width / 100;
        probe.remove();
        const inner = pre.clientWidth - parseFloat(style.paddingLeft)
            - parseFloat(style.paddingRight);
        return {scroll: pre.scrollWidth, client: pre.clientWidth,
                columns: Math.floor(inner / char)};
    })""".replace("CODE", CODE)


def test_maths_renders_offline_and_code_fits_in_a_screenshot(browser):
    page = offline_page(browser, MATHS_PAGE)
    equations = page.evaluate(TYPESET)
    assert equations > 50, f"MathJax rendered {equations} equations"
    assert page.evaluate(RAW_TEX) == [], "raw TeX left in the prose"
    cells = page.evaluate(CODE_CELLS)
    assert cells, "no code cells found"
    # the code column, measured: how many characters fit at 1280 px
    columns = min(c["columns"] for c in cells)
    assert columns >= WIDTH, f"only {columns} characters fit"
    assert all(c["scroll"] <= c["client"] for c in cells)
    shots = ROOT / "_build" / "screenshots"
    shots.mkdir(exist_ok=True)
    shot = shots / "02_elbo.png"
    first_cell = page.locator("div.cell_input").first
    first_cell.scroll_into_view_if_needed()
    page.screenshot(path=shot)
    assert shot.stat().st_size > 20_000
    # MathJax itself came from the site, not a CDN
    assert not any("mathjax" in url.lower() for url in page.refused)


@pytest.mark.parametrize("doc", CHAPTERS)
def test_no_code_cell_scrolls_sideways(browser, doc):
    page = offline_page(browser, doc)
    assert page.evaluate(TYPESET) >= 0, "MathJax did not load"
    assert page.evaluate(RAW_TEX) == []
    wide = [c for c in page.evaluate(CODE_CELLS) if c["scroll"] > c["client"]]
    assert not wide, f"{len(wide)} code cells scroll sideways: {wide[:3]}"


def test_the_measure_catches_a_line_too_long(browser):
    page = offline_page(browser, MATHS_PAGE)
    page.evaluate(
        """() => document.querySelector('div.cell_input pre')
            .appendChild(document.createTextNode('y'.repeat(120)))"""
    )
    cells = page.evaluate(CODE_CELLS)
    assert cells[0]["scroll"] > cells[0]["client"]


def test_front_page_has_the_figure_and_the_timed_chapters(browser):
    page = offline_page(browser, "book/intro")
    assert page.evaluate(TYPESET) >= 0
    figure = page.locator("article img").first
    assert figure.evaluate("img => img.naturalWidth") > 200
    rows = page.locator("article table tbody tr")
    assert rows.count() == len(CHAPTERS)
    for k, doc in enumerate(CHAPTERS):
        cells = rows.nth(k).locator("td")
        href = cells.nth(0).locator("a").get_attribute("href")
        assert href.split("#")[0].endswith(f"{Path(doc).name}.html"), href
        time_text = cells.nth(2).inner_text()
        assert re.fullmatch(r"\d+ s|\d+ min \d\d s", time_text), time_text
    note = page.locator("article p", has_text="Execution times").inner_text()
    assert re.search(r"on \d+ CPU cores", note), note
