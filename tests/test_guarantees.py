"""The README's Guarantees section names the tests that prove each promise: every one must
exist, so that a renamed or deleted test cannot leave a promise standing on nothing."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMED = re.compile(r"`(tests/[\w/]+\.py)::(test_\w+)`")


def _section(markdown: str, heading: str) -> str:
    start = markdown.index(f"\n## {heading}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end != -1 else None]


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.startswith("test_")
    }


def test_every_guarantee_names_tests_that_exist() -> None:
    section = _section((ROOT / "README.md").read_text(encoding="utf-8"), "Guarantees")
    rows = [line for line in section.splitlines() if line.startswith("| **")]
    assert rows, "the Guarantees table has no promises"
    missing = []
    for row in rows:
        named = NAMED.findall(row)
        assert named, f"a promise without a test: {row[:80]}"
        for path, name in named:
            file = ROOT / path
            if not file.exists() or name not in _tests_in(file):
                missing.append(f"{path}::{name}")
    assert not missing, f"the README's Guarantees name tests that do not exist: {missing}"
