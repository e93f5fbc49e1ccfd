"""How long the book's drawing explorers take per update, in headless Chromium.

    .venv/bin/python bench/explorer_speed.py  # after `make book`; about 20 s

Opens each built page that embeds a drawing explorer, draws strokes on the pad
with the mouse, and reads the time the page's JavaScript spent on each update:
the drawing made MNIST-style, the encoder, the decoder at the mean and at every
fixed draw, and the score. Also reports each page's size on disk. Prints a
Markdown table and writes vaelib/bench_results/explorer_speed.csv. Run it
alone: another busy process on the machine slows the browser too.
"""

from __future__ import annotations

import math
import os
import statistics
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "vaelib" / "bench_results"
PAGES = ("05_latent_space", "09_applications")
CHROMIUM = "/usr/bin/chromium"
STROKES = 12  # strokes drawn per page, each a circle of 24 mouse moves


def stroke(i: int) -> list[tuple[float, float]]:
    """A circle on the pad, a little different each time.

    Its points are in fractions of the pad's side.
    """
    r, cx = 0.2 + 0.01 * (i % 5), 0.45 + 0.01 * (i % 3)
    return [
        (
            cx + r * math.cos(t / 12 * math.pi),
            0.5 + 1.2 * r * math.sin(t / 12 * math.pi),
        )
        for t in range(25)
    ]


def update_times(page, root: str = ".vaelib-explorer") -> list[float]:
    """Milliseconds of every pad update while STROKES strokes are drawn.

    The first update is a warm-up and is left out.
    """
    page.evaluate(
        f"""() => {{
        const r = document.querySelector('{root}');
        window.times = [];
        new MutationObserver(() => window.times.push(r.vaelib.state.encodeMs))
            .observe(r, {{attributes: true, """
        f"""attributeFilter: ['data-updates']}});
    }}"""
    )
    for i in range(STROKES):
        # clicking also scrolls the pad into view
        page.locator(f"{root} button.clear").click()
        box = page.locator(f"{root} canvas.pad").bounding_box()
        at = [
            (box["x"] + u * box["width"], box["y"] + v * box["height"])
            for u, v in stroke(i)
        ]
        page.mouse.move(*at[0])
        page.mouse.down()
        for x, y in at[1:]:
            page.mouse.move(x, y)
        page.mouse.up()
        page.wait_for_timeout(50)
    return [t for t in page.evaluate("window.times") if t is not None][1:]


def main() -> pd.DataFrame:
    from playwright.sync_api import sync_playwright

    rows = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        for name in PAGES:
            path = ROOT / "_build" / "html" / "notebooks" / f"{name}.html"
            if not path.exists():
                raise SystemExit(f"{path} is missing: run `make book` first")
            page = browser.new_page()
            page.goto(path.as_uri())
            page.wait_for_selector(
                ".vaelib-explorer[data-ready='1']", timeout=30_000
            )
            times = update_times(page)
            rows.append(
                {
                    "page": name,
                    "size_kB": round(path.stat().st_size / 1e3),
                    "updates": len(times),
                    "median_ms": statistics.median(times),
                    "p90_ms": statistics.quantiles(times, n=10)[-1],
                    "max_ms": max(times),
                    "cpus": os.cpu_count(),
                }
            )
        browser.close()
    table = pd.DataFrame(rows)
    RESULTS.mkdir(exist_ok=True)
    table.to_csv(RESULTS / "explorer_speed.csv", index=False)
    print(
        "| page | size | updates | median | 90th percentile | max |\n"
        "|---|---|---|---|---|---|"
    )
    for r in rows:
        print(
            f"| {r['page']} | {r['size_kB']} kB | {r['updates']} | "
            f"{r['median_ms']:.2f} ms | {r['p90_ms']:.2f} ms | "
            f"{r['max_ms']:.2f} ms |"
        )
    return table


if __name__ == "__main__":
    main()
