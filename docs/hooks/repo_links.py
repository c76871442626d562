"""MkDocs hook: links from a page to a repository file outside docs/ (``../examples/...``).

On GitHub such a link works; on the site the file is not there. Each one whose target
exists in the repository becomes a link to it on the repository's site (``repo_url``,
when mkdocs.yml sets one), or else its text with the path. A link to a file that does not
exist is left alone, so that MkDocs still reports it. The page on disk is untouched.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.pages import Page

_LINK = re.compile(r"\[(?P<text>[^\]\n]+)\]\((?P<target>\.\./[^)\s#]+)(?P<anchor>#[^)\s]*)?\)")


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, **kwargs: Any) -> str:
    docs = Path(config.docs_dir).resolve()
    root = docs.parent  # the repository: docs/ is at its root
    here = (docs / page.file.src_uri).parent

    def replace(match: re.Match[str]) -> str:
        target = (here / match["target"]).resolve()
        if target.is_relative_to(docs) or not target.is_relative_to(root):
            return match[0]
        if not target.exists():
            return match[0]
        path = target.relative_to(root).as_posix()
        text = match["text"]
        if config.repo_url:
            url = f"{config.repo_url.rstrip('/')}/blob/HEAD/{path}{match['anchor'] or ''}"
            return f"[{text}]({url})"
        return text if path in text else f"{text} (`{path}` in the repository)"

    return _LINK.sub(replace, markdown)
