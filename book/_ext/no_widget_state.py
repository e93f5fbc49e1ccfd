"""Sphinx extension: leave ipywidgets' saved state out of the book's pages.

nbclient saves the state of every widget a chapter creates (the latent-space
chapter's kernel explorer: about 120 kB of PNGs) and myst-nb writes it into the
page for a widget manager. The book loads no widget JavaScript
(`nb_ipywidgets_js: {}` in _config.yml), so nothing would read it; it would
only push the explorer pages over their size budget
(`vaelib.book.PAGE_BYTES`).
"""


def _drop_widget_state(app, pagename, templatename, context, doctree):
    metadata = getattr(app.env, "nb_metadata", {}).get(pagename, {})
    metadata.get("js_files", {}).pop("ipywidgets_state", None)


def setup(app):
    # priority 100: before myst-nb's (500)
    app.connect("html-page-context", _drop_widget_state, priority=100)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
