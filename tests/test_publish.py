"""Publishing: the Pages workflow, Binder, the launch buttons and Colab cells.

The book is published from a tag vX.Y.Z equal to "v" + pyproject.toml's
version, and every chapter's Colab cell installs vaelib at that tag
(README.md, "Publishing the book").
"""

import ast
import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from IPython.core.inputtransformer2 import TransformerManager
from IPython.utils.text import DollarFormatter

ROOT = Path(__file__).resolve().parents[1]
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
VERSION = PROJECT["version"]
WORKFLOW_PATH = ROOT / ".github" / "workflows" / "book.yml"
WORKFLOW = yaml.safe_load(WORKFLOW_PATH.read_text())
STEPS = WORKFLOW["jobs"]["book"]["steps"]
BINDER = ROOT / ".binder"
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CPU_WHEELS = "https://download.pytorch.org/whl/cpu"


def readme_command(readme: str, command: str) -> str | None:
    """The line of README.md's "Two commands" block that starts `command`,
    without its comment."""
    section = re.search(
        r"^## Two commands\n(.*?)(?=^## )", readme, re.M | re.S
    )
    block = section and re.search(r"```bash\n(.*?)```", section[1], re.S)
    if not block:
        return None
    for line in block[1].splitlines():
        if re.match(rf"{re.escape(command)}\b", line):
            return line.split("#", 1)[0].strip()
    return None


def expected_requirement() -> str:
    return f"vaelib @ git+{CONFIG['repository']['url']}@v{VERSION}"


def pip_commands(cell_source: str) -> list[list[str]]:
    """The arguments of each %pip magic in a cell, in order, as IPython runs
    them: {name} expanded from the cell's string assignments, then split as
    the shell splits them."""
    tree = ast.parse(TransformerManager().transform_cell(cell_source))
    names, calls = {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and isinstance(
            node.value, ast.Constant
        ):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    names[target.id] = node.value.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "run_line_magic"
            and ast.literal_eval(node.args[0]) == "pip"
        ):
            calls.append(node)
    calls.sort(key=lambda call: (call.lineno, call.col_offset))
    return [
        shlex.split(
            DollarFormatter().vformat(
                ast.literal_eval(call.args[1]), args=[], kwargs=names
            )
        )
        for call in calls
    ]


def step_using(action: str) -> dict:
    (step,) = [s for s in STEPS if s.get("uses", "").startswith(action + "@")]
    return step


def python_step(marker: str) -> tuple[int, str]:
    """The index and script of the one `shell: python` step that uses
    `marker`."""
    (found,) = [
        (i, s["run"])
        for i, s in enumerate(STEPS)
        if s.get("shell") == "python" and marker in s["run"]
    ]
    return found


def run_script(script: str, cwd: Path, **env: str):
    return subprocess.run(
        [sys.executable, "-c", script],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


# The workflow


def test_readme_command_finds_the_build_command_and_only_it():
    readme = (ROOT / "README.md").read_text()
    assert readme_command(readme, "make book") == "make book"
    assert readme_command(readme, "make publish") is None
    assert readme_command("# vae-book\n\n## Two commands\n\n", "make") is None


def test_the_build_step_runs_the_readmes_build_command():
    command = readme_command((ROOT / "README.md").read_text(), "make book")
    assert command, "README.md's Two commands show no `make book`"
    runs = [s.get("run", "").strip() for s in STEPS]
    assert runs.count(command) == 1, runs


def test_workflow_runs_for_version_tags_and_by_hand():
    # PyYAML reads the key `on` as the boolean True (YAML 1.1)
    on = WORKFLOW.get("on", WORKFLOW.get(True))
    assert on["push"] == {"tags": ["v*"]}
    assert "workflow_dispatch" in on
    assert fnmatch.fnmatchcase(f"v{VERSION}", on["push"]["tags"][0])


def test_workflow_may_deploy_pages_one_run_at_a_time():
    permissions = WORKFLOW["permissions"]
    assert permissions["pages"] == "write"
    assert permissions["id-token"] == "write"
    assert WORKFLOW["concurrency"]["group"] == "pages"
    job = WORKFLOW["jobs"]["book"]
    assert job["environment"]["name"] == "github-pages"


def test_workflow_builds_uploads_build_html_and_deploys_in_order():
    assert STEPS[0]["uses"].startswith("actions/checkout@")
    python = step_using("actions/setup-python")
    assert str(python["with"]["python-version"]) == "3.11"
    upload = step_using("actions/upload-pages-artifact")
    assert upload["with"]["path"] == "_build/html"
    deploy = step_using("actions/deploy-pages")
    build = next(s for s in STEPS if s.get("run", "").strip() == "make book")
    order = [STEPS.index(s) for s in (python, build, upload, deploy)]
    assert order == sorted(order)
    assert deploy["id"] == "deployment"  # the environment's url reads it


def test_workflow_caches_the_trained_models_keyed_on_the_code():
    cache = step_using("actions/cache")
    assert cache["with"]["path"] == ".cache/models"
    key = cache["with"]["key"]
    files = re.search(r"hashFiles\(([^)]*)\)", key)
    assert files, key
    assert {f.strip().strip("'\"") for f in files[1].split(",")} == {
        "vaelib/**",
        "pyproject.toml",
        "requirements.lock",
    }
    build = next(s for s in STEPS if s.get("run", "").strip() == "make book")
    assert STEPS.index(cache) < STEPS.index(build)


def test_workflow_first_fails_unless_the_tag_is_v_plus_the_version(tmp_path):
    index, script = python_step('environ["GITHUB_REF"]')
    before = [s.get("uses", "").split("@")[0] for s in STEPS[:index]]
    assert before == ["actions/checkout", "actions/setup-python"], before
    ok = run_script(script, ROOT, GITHUB_REF=f"refs/tags/v{VERSION}")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for wrong in (
        f"refs/tags/v{VERSION}.1",
        f"refs/tags/{VERSION}",
        "refs/tags/v0.0.0-not-this",
        "refs/heads/main",
    ):
        run = run_script(script, ROOT, GITHUB_REF=wrong)
        assert run.returncode != 0, wrong
        assert "::error::" in run.stdout, run.stdout
    # the version comes from pyproject.toml, not from the script
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "vaelib"\nversion = "9.9.9"\n'
    )
    run = run_script(script, tmp_path, GITHUB_REF=f"refs/tags/v{VERSION}")
    assert run.returncode != 0
    run = run_script(script, tmp_path, GITHUB_REF="refs/tags/v9.9.9")
    assert run.returncode == 0, run.stdout + run.stderr


def test_workflow_points_the_launch_buttons_at_the_tag(tmp_path):
    index, script = python_step('environ["GITHUB_REF_NAME"]')
    check, _ = python_step('environ["GITHUB_REF"]')
    build = next(s for s in STEPS if s.get("run", "").strip() == "make book")
    assert check < index < STEPS.index(build)
    config = tmp_path / "_config.yml"
    config.write_text((ROOT / "_config.yml").read_text())
    tag = f"v{VERSION}"
    run = run_script(script, tmp_path, GITHUB_REF_NAME=tag)
    assert run.returncode == 0, run.stdout + run.stderr
    changed = yaml.safe_load(config.read_text())
    assert changed["repository"]["branch"] == tag
    changed["repository"]["branch"] = CONFIG["repository"]["branch"]
    assert changed == CONFIG  # nothing else changed
    config.write_text("title: no repository\n")
    assert run_script(script, tmp_path, GITHUB_REF_NAME=tag).returncode != 0


# Binder


def test_binder_runtime_is_the_projects_python():
    minor = re.fullmatch(r">=\s*(3\.\d+)", PROJECT["requires-python"])
    assert minor, PROJECT["requires-python"]
    runtime = (BINDER / "runtime.txt").read_text().strip()
    assert runtime == f"python-{minor[1]}"


def test_binder_installs_the_pins_with_cpu_only_pytorch():
    lines = [
        line.split("#", 1)[0].strip()
        for line in (BINDER / "requirements.txt").read_text().splitlines()
    ]
    lines = [line for line in lines if line]
    assert lines[0] == f"--extra-index-url {CPU_WHEELS}"
    assert "-r ../requirements.lock" in lines
    # pip reads a nested -r relative to the file that names it
    assert (BINDER / ".." / "requirements.lock").resolve() == (
        ROOT / "requirements.lock"
    )
    assert (ROOT / "requirements.lock").is_file()


def test_binder_post_build_installs_vaelib_from_the_checkout():
    post_build = BINDER / "postBuild"
    assert os.access(post_build, os.X_OK), "postBuild must be executable"
    text = post_build.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") or text.startswith(
        "#!/bin/bash\n"
    )
    commands = [shlex.split(line, comments=True) for line in text.splitlines()]
    assert ["set", "-euo", "pipefail"] in commands
    installs = [
        c for c in commands if c[:4] == ["python", "-m", "pip", "install"]
    ]
    assert len(installs) == 1 and "--no-deps" in installs[0], installs
    assert installs[0][-1] == ".", installs
    subprocess.run(["bash", "-n", str(post_build)], check=True)


# Launch buttons and the Colab cells


def test_launch_buttons_name_colab_and_binder():
    buttons = CONFIG["launch_buttons"]
    assert buttons["colab_url"] == "https://colab.research.google.com"
    assert buttons["binderhub_url"] == "https://mybinder.org"
    assert CONFIG["repository"]["url"].startswith("https://github.com/")


def test_pip_commands_expand_variables_and_catch_the_wrong_install():
    url = CONFIG["repository"]["url"]
    untagged = (
        'if "google.colab" in sys.modules:\n'
        f'    %pip install --quiet --no-deps "vaelib @ git+{url}"'
    )
    wrong_tag = (
        f'requirement = "vaelib @ git+{url}@v{VERSION}.dev0"\n'
        '%pip install --quiet --no-deps "{requirement}"\n'
        '%pip install --quiet "anywidget==0.11.0"'
    )
    expected = ["install", "--quiet", "--no-deps", expected_requirement()]
    assert pip_commands(untagged)[0][:3] == expected[:3]
    assert pip_commands(untagged)[0] != expected
    assert pip_commands(wrong_tag)[0] != expected
    assert pip_commands(wrong_tag)[1] == [
        "install",
        "--quiet",
        "anywidget==0.11.0",
    ]
    right = wrong_tag.replace(".dev0", "")
    assert pip_commands(right)[0] == expected
    with pytest.raises(NameError):  # a name the cell does not define
        pip_commands('%pip install --quiet --no-deps "{unknown}"')


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_cell_installs_vaelib_at_the_release_tag(path):
    first = json.loads(path.read_text())["cells"][0]
    assert first["cell_type"] == "code"
    assert "remove-cell" in first["metadata"].get("tags", [])
    text = "".join(first["source"])
    assert 'if "google.colab" in sys.modules:' in text
    commands = pip_commands(text)
    assert commands, text
    assert commands[0] == [
        "install",
        "--quiet",
        "--no-deps",
        expected_requirement(),
    ]
    assert all(len(line) <= 79 for line in text.splitlines()), text


def test_first_cells_share_their_comment_lines():
    comments = {
        path.name: [
            line
            for line in json.loads(path.read_text())["cells"][0]["source"]
            if line.startswith("#")
        ]
        for path in NOTEBOOKS
    }
    assert NOTEBOOKS and all(comments.values()), comments
    assert len({tuple(c) for c in comments.values()}) == 1, comments
