"""Sphinx extension: the front page's table of chapters, timed by the build.

    ```{chapter-table}
    notebooks/01_first_vae | what the chapter teaches
    ```

becomes a table of chapter (linked, with its title), what it teaches, and
how long this build took to execute it (myst-nb's execution record, so the
times are measured, not typed), with the build machine's core count.
"""

from docutils import nodes
from sphinx.addnodes import pending_xref
from sphinx.transforms.post_transforms import SphinxPostTransform
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

from vaelib.book import available_cores

LOGGER = logging.getLogger(__name__)


class chapter_table(nodes.General, nodes.Element):
    """Placeholder, filled once every chapter has been executed."""


def duration(seconds: float) -> str:
    """'45 s' or '3 min 05 s'."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{int(seconds // 60)} min {round(seconds % 60):02d} s"


class ChapterTable(SphinxDirective):
    has_content = True

    def run(self):
        rows = []
        for line in self.content:
            if not line.strip():
                continue
            doc, sep, teaches = (part.strip() for part in line.partition("|"))
            if not sep or not teaches:
                raise self.error(
                    f"expected 'docname | what it teaches': {line}"
                )
            rows.append((doc, teaches))
        node = chapter_table(rows=rows)
        self.env.note_dependency(__file__)
        return [node]


def _cell(*children) -> nodes.entry:
    return nodes.entry("", nodes.paragraph("", "", *children))


class FillChapterTable(SphinxPostTransform):
    default_priority = 8  # before references are resolved

    def run(self, **kwargs) -> None:
        metadata = getattr(self.env, "nb_metadata", {})
        for node in list(self.document.findall(chapter_table)):
            table = nodes.table(classes=["colwidths-auto"])
            group = nodes.tgroup(cols=3)
            table += group
            group += [nodes.colspec(colwidth=w) for w in (30, 55, 15)]
            head = nodes.thead()
            group += head
            titles = ("Chapter", "What it teaches", "Executes in")
            head += nodes.row("", *(_cell(nodes.Text(t)) for t in titles))
            body = nodes.tbody()
            group += body
            total = 0.0
            for doc, teaches in node["rows"]:
                data = metadata.get(doc, {}).get("exec_data") or {}
                runtime = data.get("runtime")
                if runtime is None or not data.get("succeeded"):
                    LOGGER.warning(
                        f"chapter-table: {doc} was not executed by this "
                        "build, so it has no execution time",
                        location=node,
                    )
                    shown = "not executed"
                else:
                    total += runtime
                    shown = duration(runtime)
                title = self.env.titles.get(doc)
                link = pending_xref(
                    "",
                    nodes.inline("", title.astext() if title else doc),
                    refdoc=self.env.docname,
                    refdomain="std",
                    reftype="doc",
                    reftarget="/" + doc,
                    refexplicit=True,
                )
                body += nodes.row(
                    "",
                    _cell(link),
                    _cell(nodes.Text(teaches)),
                    _cell(nodes.Text(shown)),
                )
            cores = available_cores()  # as `make models` counts them
            note = nodes.paragraph(
                "",
                f"Execution times: this build of the book, on {cores} CPU "
                f"cores with the shared models already trained; "
                f"{duration(total)} in all.",
            )
            node.replace_self([table, note])


def setup(app):
    app.add_node(chapter_table)
    app.add_directive("chapter-table", ChapterTable)
    app.add_post_transform(FillChapterTable)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
