"""Sphinx extension: the book's maths renders without internet.

Sphinx loads MathJax from a CDN by default, so a page opened offline shows
raw `\\(q_\\phi(z \\mid x)\\)`. This extension serves MathJax 3 from the built
site instead: the files come from the pinned `sphinx-mathjax-offline`
package (installed by `make`), are copied to `_static/mathjax/` with
MathJax's licence, and `mathjax_path` points at them.
"""

import importlib.util
import shutil
from pathlib import Path

ENTRY = "tex-chtml.js"  # TeX input, HTML output: what the book's maths needs
LICENCE = Path(__file__).with_name("MathJax-LICENSE.txt")


def mathjax_files() -> Path:
    """The installed MathJax folder, or an error that says what to do."""
    spec = importlib.util.find_spec("sphinx-mathjax-offline")
    folder = Path(spec.origin).parent / "static" / "mathjax" if spec else None
    if folder is None or not (folder / ENTRY).is_file():
        raise RuntimeError(
            "The book serves MathJax from the sphinx-mathjax-offline "
            "package, which is not installed: run `make setup` (or pip "
            "install -r requirements.lock)."
        )
    return folder


def _copy(app, exception):
    if exception is None and app.builder.format == "html":
        target = Path(app.outdir) / "_static" / "mathjax"
        shutil.copytree(mathjax_files(), target, dirs_exist_ok=True)
        shutil.copy(LICENCE, target / "LICENSE.txt")


def _point_at_local_copy(app, config):
    mathjax_files()  # fail at the start of a build, not after it
    config.mathjax_path = f"mathjax/{ENTRY}"


def setup(app):
    app.connect("config-inited", _point_at_local_copy)
    app.connect("build-finished", _copy)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
