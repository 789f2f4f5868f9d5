"""The layout limits of the spine issue: no file of src/ over 600 lines, no function over
80 lines (docstrings included), so that no god function or god module creeps back."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "artiphys"
MAX_FILE_LINES, MAX_FUNCTION_LINES = 600, 80


def _python_files():
    return sorted(SRC.rglob("*.py"))


def test_no_source_file_is_over_600_lines():
    long = {str(p.relative_to(SRC)): n for p in _python_files()
            if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES}
    assert not long, f"split these modules: {long}"


def test_no_function_is_over_80_lines():
    long = {}
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long[f"{path.relative_to(SRC)}:{node.name}"] = n
    assert not long, f"split these functions: {long}"
