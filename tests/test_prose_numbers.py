"""No measured number is typed into a chapter's prose.

The code prints it or glues it. The scan reads every Markdown cell and every
figure caption of every chapter, drops what is not prose (maths, code, MyST
roles such as {glue} and {cite}, list numbers), and fails on any number that is
left, unless it is part of a phrase in ALLOWED. Numbers a chapter measures
belong in its code's output or in a `{glue}` role; design constants come from
`vaelib.book` or the config and are glued or printed the same way.
"""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))

# Phrases that keep a typed number, each with the reason it may stay. Facts of
# the data set or of mathematics, not measurements and not the book's own
# design choices.
ALLOWED = {
    r"28 × 28": "MNIST's image size, a property of the data set",
    r"20 × 20": (
        "the box MNIST's digits were fitted into, a property of the data set"
    ),
    r"60,000 training and 10,000 test": (
        "MNIST's split sizes, fixed by the data set"
    ),
    r"\b8-bit\b": "the data sets' pixel format",
    r"\b[123]-D\b": (
        "the dimension of a plot or of a toy space, not a measurement"
    ),
    r"\blatent[- ](?:2|10|20)\b": (
        "names of the book's models by latent size, "
        "vaelib.book.LATENT_SIZES (checked below)"
    ),
    r"\bexercise \d\b": "a reference to another exercise of the same chapter",
}


_FENCE = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_DISPLAY_MATH = re.compile(r"\$\$.*?\$\$", re.S)
_INLINE_MATH = re.compile(r"\$[^$]+\$|\\\(.*?\\\)", re.S)
_CODE = re.compile(r"`[^`\n]*`")
_LIST_NUMBER = re.compile(r"^\s*\d+\.\s", re.M)
_DIRECTIVE = re.compile(r"^:::.*$", re.M)
_NUMBER = re.compile(r"(?<![\w.])\d+(?:[.,]\d+)*")


def prose(text: str) -> str:
    """The parts of a Markdown cell that a reader sees as running text."""
    for pattern in (
        _FENCE,
        _DISPLAY_MATH,
        _INLINE_MATH,
        _CODE,
        _DIRECTIVE,
        _LIST_NUMBER,
    ):
        text = pattern.sub(" ", text)
    return text


def typed_numbers(text: str) -> list[str]:
    """Numbers left in `text`'s prose once the allowed phrases are removed."""
    text = prose(text)
    for phrase in ALLOWED:
        text = re.sub(phrase, " ", text)
    return [m.group() for m in _NUMBER.finditer(text)]


def prose_cells(path: Path) -> list[tuple[str, str]]:
    """(where, text) per Markdown cell and per figure caption of a notebook."""
    out = []
    for i, cell in enumerate(json.loads(path.read_text())["cells"]):
        if cell["cell_type"] == "markdown":
            out.append((f"cell {i}", "".join(cell["source"])))
        figure = cell.get("metadata", {}).get("mystnb", {}).get("figure", {})
        if "caption" in figure:
            out.append((f"cell {i} caption", figure["caption"]))
    return out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_number_is_typed_into_the_prose(path):
    found = [
        (where, n)
        for where, text in prose_cells(path)
        for n in typed_numbers(text)
    ]
    assert not found, (
        f"{path.name}: numbers typed into the prose {found}. Print or glue "
        f"them from the code (myst-nb glue), or take design constants from "
        f"vaelib.book."
    )


def test_the_typed_latent_sizes_are_the_books():
    from vaelib import book

    assert (book.LATENT_SIZES == (2, 10, 20)) and (
        set(book.RECIPE_LATENTS) <= set(book.LATENT_SIZES)
    )


def test_every_allowed_phrase_is_used_and_has_a_reason():
    text = "\n".join(t for path in NOTEBOOKS for _, t in prose_cells(path))
    for phrase, reason in ALLOWED.items():
        assert reason, f"allowed phrase {phrase!r} needs a reason"
        assert re.search(phrase, prose(text)), (
            f"allowed phrase {phrase!r} is no longer used; remove it"
        )


@pytest.mark.parametrize(
    "typed",
    [
        "the test −ELBO is 99.66 nats",
        "about 45 nats",
        "AUROC 0.91",
        "## What 148 nats means",
        "trained for 30 epochs",
    ],
)
def test_a_typed_number_is_caught(typed):
    assert typed_numbers(typed), typed


def test_a_typed_decimal_in_a_real_chapter_fails_the_check(tmp_path):
    nb = json.loads(NOTEBOOKS[0].read_text())
    cell = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    cell["source"] = (
        "".join(cell["source"])
        + "\nThe seed model reaches 148.69 nats on the test set.\n"
    )
    copy = tmp_path / NOTEBOOKS[0].name
    copy.write_text(json.dumps(nb))
    with pytest.raises(AssertionError, match="148.69"):
        test_no_number_is_typed_into_the_prose(copy)


@pytest.mark.parametrize(
    "fine",
    [
        "$784 \\log 2$ nats",
        "`latent_dim=10`",
        "{glue}`test_elbo` nats",
        "{cite}`kingma2013auto`",
        "a 28 × 28 image",
        "$$\nL_{1000}\n$$",
        "1. First exercise",
        "float32 and x86",
    ],
)
def test_maths_code_roles_and_allowed_phrases_are_not_prose_numbers(fine):
    assert typed_numbers(fine) == [], fine
