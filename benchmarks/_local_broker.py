"""The broker a small benchmark runs against, and its table's two shapes.

``given_or_tansu(bootstrap)``: the cluster named on the command line, else an embedded
Tansu broker for the run (what ``--bootstrap-servers`` defaults to in ``metrics_cost``,
``cold_start`` and ``loop_lag``). ``table(lines, markdown=...)``: a Markdown table as it
is, or as plain columns for a terminal. ``client_names``: ``--clients a,b`` checked.
"""

from __future__ import annotations

import argparse
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager


@contextmanager
def given_or_tansu(bootstrap: str | None) -> Iterator[str]:
    if bootstrap is not None:
        yield bootstrap
        return
    from asyncproducer.testing.tansu import TansuBroker

    with TansuBroker() as broker:
        yield broker.bootstrap_servers


def table(lines: Sequence[str], *, markdown: bool) -> str:
    """``lines``: a Markdown table (header, separator, rows)."""
    if markdown:
        return "\n".join(lines)
    return "\n".join(line.replace("|", " ").strip() for line in lines if "---" not in line)


def client_names(parser: argparse.ArgumentParser, text: str, known: Collection[str]) -> list[str]:
    """The comma-separated client names of ``text``; a usage error for one not ``known``."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = set(names) - set(known)
    if unknown:
        parser.error(f"unknown clients {sorted(unknown)}: choose from {sorted(known)}")
    return names
