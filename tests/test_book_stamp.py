"""`make test` reuses the book build's execution of a chapter.

It does so only while nothing the chapter depends on has changed.
"""

import json
import shutil

import pytest

import book_stamp
from book_stamp import ROOT


@pytest.fixture
def project(tmp_path):
    """A copy of the repository's inputs with one chapter.

    A pretend build executed the chapter cleanly.
    """
    for folder in ("vaelib", "notebooks"):
        (tmp_path / folder).mkdir()
    for path in (ROOT / "vaelib").glob("*.py"):
        shutil.copy(path, tmp_path / "vaelib" / path.name)
    shutil.copytree(ROOT / "vaelib" / "static", tmp_path / "vaelib" / "static")
    (tmp_path / "vaelib" / "bench_results").mkdir()
    for name in ("_config.yml", "requirements.lock", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    notebook = tmp_path / "notebooks" / "01_first_vae.ipynb"
    shutil.copy(ROOT / "notebooks" / notebook.name, notebook)
    executed = json.loads(notebook.read_text())
    for i, cell in enumerate(
        c for c in executed["cells"] if c["cell_type"] == "code"
    ):
        cell["execution_count"], cell["outputs"] = i + 1, []
    book_stamp.executed_copy(notebook, tmp_path).parent.mkdir(parents=True)
    book_stamp.executed_copy(notebook, tmp_path).write_text(
        json.dumps(executed)
    )
    return tmp_path, notebook


def test_a_chapter_is_fresh_until_it_or_the_library_changes(project):
    root, notebook = project
    assert not book_stamp.fresh(notebook, root)  # no build recorded yet
    book_stamp.write(root)
    assert book_stamp.fresh(notebook, root)
    for changed in (
        notebook,
        root / "vaelib" / "train.py",
        root / "vaelib" / "static" / "explorer.js",
        root / "_config.yml",
    ):
        text = changed.read_bytes()
        changed.write_bytes(text + b"\n")
        assert not book_stamp.fresh(notebook, root), changed.name
        changed.write_bytes(text)
    assert book_stamp.fresh(notebook, root)
    (root / "vaelib" / "bench_results" / "explorer_speed.csv").write_text(
        "measured from the built pages\n"
    )
    assert book_stamp.fresh(notebook, root)  # no chapter reads it
    (root / "vaelib" / "bench_results" / "train_speed.csv").write_text(
        "the appendix reads this\n"
    )
    assert not book_stamp.fresh(notebook, root)


def test_an_error_or_an_unexecuted_cell_in_the_built_copy_fails(project):
    root, notebook = project
    copy = book_stamp.executed_copy(notebook, root)
    clean = json.loads(copy.read_text())
    book_stamp.check_executed(notebook, root)
    broken = json.loads(copy.read_text())
    code = [c for c in broken["cells"] if c["cell_type"] == "code"]
    code[3]["outputs"] = [
        {
            "output_type": "error",
            "ename": "AssertionError",
            "evalue": "claim",
            "traceback": [],
        }
    ]
    copy.write_text(json.dumps(broken))
    with pytest.raises(
        AssertionError, match="code cell 4 raised AssertionError: claim"
    ):
        book_stamp.check_executed(notebook, root)
    code[3]["outputs"], code[5]["execution_count"] = [], None
    copy.write_text(json.dumps(broken))
    with pytest.raises(AssertionError, match="code cell 6 did not run"):
        book_stamp.write(root)
    copy.write_text(json.dumps(clean))
    copy.unlink()
    with pytest.raises(
        AssertionError, match="did not execute 01_first_vae.ipynb"
    ):
        book_stamp.check_executed(notebook, root)
