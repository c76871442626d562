"""MkDocs hook: drops the labels after a fence's language before the page is rendered.

Some fences carry a label for a test to find them: docs/security.md's recipes are
```` ```python recipe=NAME ````, which tests/integration/test_security_recipes.py runs.
SuperFences takes only `{...}` attributes or quoted options there, and would not see such
a line as a fence at all (swallowing the headings that follow), so the site renders it as
a plain ```` ```python ````. The page on disk is untouched.
"""

from __future__ import annotations

import re
from typing import Any

_LABELLED_FENCE = re.compile(
    r"^(?P<fence>`{3,}|~{3,})(?P<lang>[\w+-]+)[ \t]+\w[\w-]*=[\w-]+[ \t]*$", re.M
)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return _LABELLED_FENCE.sub(r"\g<fence>\g<lang>", markdown)
