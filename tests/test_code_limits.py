"""Code limits of src/ (STYLE): files <= 600 lines, functions <= 80 lines, and no broad
``except Exception`` / bare ``except`` that swallows the error instead of raising."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_FILE, MAX_FUNC = 600, 80


def _files():
    return sorted(SRC.rglob("*.py"))


def _too_long():
    files, funcs = [], []
    for path in _files():
        text = path.read_text()
        n = len(text.splitlines())
        if n > MAX_FILE:
            files.append(f"{path.relative_to(SRC)}: {n} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNC:
                    funcs.append(f"{path.relative_to(SRC)}:{node.name}: {length} lines")
    return files, funcs


def test_limits_find_a_long_function(tmp_path):
    """The checker itself: a 90-line function is found (known answer first)."""
    body = "\n".join(f"    x{i} = {i}" for i in range(89))
    tree = ast.parse(f"def f():\n{body}\n")
    node = tree.body[0]
    assert node.end_lineno - node.lineno + 1 == 90


def test_no_file_or_function_over_limits():
    files, funcs = _too_long()
    assert not files and not funcs, "\n".join(files + funcs)


def _swallows(handler: ast.ExceptHandler) -> bool:
    """A broad handler (bare, Exception, BaseException) whose body never raises."""
    broad = handler.type is None or (
        isinstance(handler.type, ast.Name) and handler.type.id in {"Exception", "BaseException"})
    if not broad:
        return False
    return not any(isinstance(n, ast.Raise) for stmt in handler.body for n in ast.walk(stmt))


def test_swallow_checker_known_answers():
    silent = ast.parse("try:\n    f()\nexcept Exception:\n    pass\n").body[0].handlers[0]
    bare = ast.parse("try:\n    f()\nexcept:\n    x = 1\n").body[0].handlers[0]
    loud = ast.parse("try:\n    f()\nexcept Exception as e:\n    raise E() from e\n"
                     ).body[0].handlers[0]
    named = ast.parse("try:\n    f()\nexcept OSError:\n    pass\n").body[0].handlers[0]
    assert _swallows(silent) and _swallows(bare)
    assert not _swallows(loud) and not _swallows(named)


def test_no_silent_broad_except_in_src():
    bad = []
    for path in _files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ExceptHandler) and _swallows(node):
                bad.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert not bad, "broad except that does not re-raise: " + ", ".join(bad)
