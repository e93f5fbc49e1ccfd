"""Repository hygiene.

Notebooks, Colab cells, the table of contents, pins and the CI command.
"""

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def test_there_are_notebooks():
    assert NOTEBOOKS, "no chapter notebooks found"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    dirty = [
        i
        for i, c in enumerate(cells(path))
        if c["cell_type"] == "code" and (c["outputs"] or c["execution_count"])
    ]
    assert not dirty, (
        f"{path.name}: cells {dirty} have outputs; "
        "clear them before committing"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_cell_installs_vaelib_in_colab_from_the_configured_repository(
    path,
):
    first = cells(path)[0]
    text = source(first)
    url = CONFIG["repository"]["url"]
    assert (first["cell_type"] == "code") and (
        "remove-cell" in first["metadata"].get("tags", [])
    )
    assert 'if "google.colab" in sys.modules:' in text
    installs = re.findall(r"%pip install .*", text)
    # vaelib at the release tag the book is built from (tests/test_publish.py)
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "version"
    ]
    assert f'requirement = "vaelib @ git+{url}@v{version}"\n' in text, text
    assert installs[0] == '%pip install --quiet --no-deps "{requirement}"', (
        installs
    )
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "dependencies"
    ]
    for extra in installs[1:]:  # what Colab lacks, at the version vaelib pins
        assert (
            re.fullmatch(r'%pip install --quiet "(.+)"', extra)
            and extra.split('"')[1] in pins
        ), extra


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_skeleton_goals_content_summary_exercises(path):
    text = "\n".join(
        source(c) for c in cells(path) if c["cell_type"] == "markdown"
    )
    positions = [
        text.find(marker)
        for marker in ("**Learning goals.**", "\n## Summary", "\n## Exercises")
    ]
    assert -1 not in positions and positions == sorted(positions), positions
    assert ":::{dropdown} Solution" in text
    first_code = source(
        [c for c in cells(path)[1:] if c["cell_type"] == "code"][0]
    )
    assert "seed_everything(" in first_code, (
        "seed everything in the first code cell"
    )


def toc_files(node) -> list[str]:
    if isinstance(node, dict):
        return ([node["file"]] if "file" in node else []) + [
            f for v in node.values() for f in toc_files(v)
        ]
    if isinstance(node, list):
        return [f for v in node for f in toc_files(v)]
    return []


def test_toc_lists_every_notebook_and_only_existing_files():
    listed = toc_files(yaml.safe_load((ROOT / "_toc.yml").read_text()))
    assert {f"notebooks/{p.stem}" for p in NOTEBOOKS} <= set(listed)
    for f in listed:
        assert any(
            (ROOT / f).with_suffix(s).exists() for s in (".md", ".ipynb")
        ), f


def test_environment_yml_mirrors_pyproject_pins():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = project["dependencies"] + [
        d for ds in project["optional-dependencies"].values() for d in ds
    ]
    env = (ROOT / "environment.yml").read_text().lower()
    for pin in pins:
        name, version = pin.lower().split("==")
        assert re.search(
            rf"- {re.escape(name)}(==|=){re.escape(version)}\n", env
        ), f"{pin} missing from environment.yml"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"```bash\n(?:.*\n)*?(make test)\b", readme)
    assert command, "README.md shows no `make test` command"
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^(time )?make test$", ci, re.M)


def test_a_skipped_test_fails_under_ci(tmp_path):
    for helper in ("conftest.py", "book_stamp.py"):
        (tmp_path / helper).write_text((ROOT / "tests" / helper).read_text())
    (tmp_path / "test_needs_a_browser.py").write_text(
        "import pytest\n\n"
        "def test_browser():\n"
        "    pytest.skip('Chromium is not installed')\n"
    )
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        str(tmp_path),
    ]
    # both at once: each spends most of its time importing torch
    runs = {
        expected: subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "CI": ci},
        )
        for ci, expected in (("true", "1 failed"), ("", "1 skipped"))
    }
    for expected, run in runs.items():
        out = run.communicate(timeout=120)[0]
        assert expected in out, out
    assert "export CI=true" in (ROOT / ".ci" / "run").read_text()


def test_make_refuses_another_python_with_a_clear_message(tmp_path):
    fake = tmp_path / "python3.9"
    fake.write_text(
        "#!/bin/sh\n"
        '[ "$1" = "--version" ] && echo "Python 3.9.18" && exit 0\n'
        "exit 1\n"
    )
    fake.chmod(0o755)
    out = subprocess.run(
        ["make", "-s", "check-python", f"PYTHON={fake}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert out.returncode != 0
    assert (
        "needs Python 3.11" in out.stdout + out.stderr
        and "Python 3.9.18" in out.stdout + out.stderr
    )
    ok = subprocess.run(
        ["make", "-s", "check-python", f"PYTHON={sys.executable}"],
        cwd=ROOT,
        capture_output=True,
    )
    assert ok.returncode == 0
