"""Helpers for chapters: show the library's own source instead of pasting a second copy."""

from __future__ import annotations

import inspect
import textwrap


def show_source(*objects):
    """Syntax-highlighted source of functions/classes, for display in Jupyter, Colab and the book."""
    from IPython.display import Code

    return Code("\n\n".join(textwrap.dedent(inspect.getsource(o)) for o in objects), language="python")
