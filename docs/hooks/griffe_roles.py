"""A griffe extension for the API reference: the docstrings' reST as Markdown.

The docstrings are written to be read in an editor and with ``help()``, in reST's small
habits: they name other objects with roles (``:class:`ConfigError```,
``:meth:`~Producer.flush```) and end a paragraph with ``::`` before an indented example.
Markdown has neither: each role becomes a code span of the name (``~`` keeps the last
part, as in Sphinx), and ``::`` becomes ``:`` (the example, indented after a blank line,
is a code block in Markdown too). Nothing else in a docstring is changed.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_LITERAL_MARKER = re.compile(r"(?P<space>[ \t]*)::[ \t]*$", re.M)
_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|mod|attr|exc|data|obj|const|term):`(~?)([^`]+)`")


def _code(match: re.Match[str]) -> str:
    short, name = match.groups()
    if short:
        name = name.rsplit(".", 1)[-1]
    return f"`{name}`"


def _literal_marker(match: re.Match[str]) -> str:
    # reST: "text::" reads "text:"; "text ::" and a "::" alone on its line go.
    at_line_start = match.start() == 0 or match.string[match.start() - 1] == "\n"
    return "" if match["space"] or at_line_start else ":"


class ReSTRoles(griffe.Extension):
    """Rewrites ``:role:`name``` as ```name``` and a paragraph's ``::`` as ``:``."""

    def on_object(self, *, obj: griffe.Object, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        if obj.docstring is not None:
            text = _ROLE.sub(_code, obj.docstring.value)
            obj.docstring.value = _LITERAL_MARKER.sub(_literal_marker, text)
