"""Helpers for chapters: show the library's own source instead of a copy."""

from __future__ import annotations

import inspect
import textwrap


def show_source(*objects):
    """Syntax-highlighted source of functions or classes, for display."""
    from IPython.display import Code

    return Code(
        "\n\n".join(textwrap.dedent(inspect.getsource(o)) for o in objects),
        language="python",
    )


def glue(name: str, value) -> None:
    """Hand a computed value to the book's prose: {glue:text}`name` prints it.

    Uses myst-nb. Outside a book build (Colab, plain Jupyter without myst-nb)
    there is no prose to fill: no-op.
    """
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        return
    myst_glue(name, value, display=False)


def layer_table(model, x):
    """One row per leaf module for a pass of x: type, output shape, size."""
    import pandas as pd
    import torch

    rows, hooks = [], []
    for name, module in model.named_modules():
        if len(list(module.children())) == 0:

            def record(mod, _inputs, output, name=name):
                rows.append(
                    {
                        "layer": name,
                        "type": type(mod).__name__,
                        "output shape": tuple(output.shape),
                        "parameters": sum(p.numel() for p in mod.parameters()),
                    }
                )

            hooks.append(module.register_forward_hook(record))
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        for hook in hooks:
            hook.remove()
    return pd.DataFrame(rows)
