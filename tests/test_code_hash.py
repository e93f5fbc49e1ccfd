"""The training code's hash is the same under every Python.

Cached models and the committed benchmark results are keyed by it: a hash
that changed with the Python version made Colab (Python 3.12) refuse the
benchmarks the book was built with (Python 3.11).
"""

import ast
import sys
from pathlib import Path

import pytest

from vaelib import cache

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    sys.version_info[:2] != (3, 11),
    reason="the project's Python, whose ast.dump the hashes were made with",
)
@pytest.mark.parametrize("folder", ["vaelib", "bench", "tests"])
def test_code_text_is_python_3_11s_ast_dump(folder):
    for path in sorted((ROOT / folder).glob("*.py")):
        tree = ast.parse(path.read_text())
        assert cache.ast_text(tree) == ast.dump(tree), path


def test_known_answer_keeps_none_and_ellipsis_constants():
    tree = ast.parse("def f(x=...):\n    return None")
    assert cache.ast_text(tree) == (
        "Module(body=[FunctionDef(name='f', args=arguments(posonlyargs=[], "
        "args=[arg(arg='x')], kwonlyargs=[], kw_defaults=[], "
        "defaults=[Constant(value=Ellipsis)]), "
        "body=[Return(value=Constant(value=None))], decorator_list=[])], "
        "type_ignores=[])"
    )


def test_fields_that_later_pythons_added_are_left_out():
    class FunctionDef(ast.AST):  # as Python 3.12 defines it, in part
        _fields = ("name", "type_params", "returns")
        returns = None  # an optional field

    node = FunctionDef()
    node.name, node.type_params, node.returns = "f", [], None
    assert cache.ast_text(node) == "FunctionDef(name='f')"
    node.returns = ast.Name(id="int", ctx=ast.Load())
    assert cache.ast_text(node) == (
        "FunctionDef(name='f', returns=Name(id='int', ctx=Load()))"
    )
