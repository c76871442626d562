"""Every ```python block in docs/ runs, so the examples stay true."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parent.parent / "docs"
BLOCK = re.compile(r"```python\n(.*?)```", re.S)

EXAMPLES = [
    pytest.param(code, id=f"{page.relative_to(DOCS).as_posix()}:{n}")
    for page in sorted(DOCS.rglob("*.md"))
    for n, code in enumerate(BLOCK.findall(page.read_text()))
]


def test_docs_have_examples() -> None:
    assert EXAMPLES


@pytest.mark.parametrize("code", EXAMPLES)
def test_example_runs(code: str) -> None:
    exec(compile(code, "<docs example>", "exec"), {"__name__": "__docs__"})
