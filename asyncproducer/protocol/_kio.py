"""Import this before kio: it loads kio's phantom types with Hypothesis hidden, unless
Hypothesis is imported already.

kio registers a Hypothesis strategy for each of its types when Hypothesis can be
imported, which imports Hypothesis (and, through it, pytest and trio): ~0.3 s and ~15 MiB
in every process where Hypothesis happens to be installed, a production service's
included, for strategies only kio's own property tests use. A process that imported
Hypothesis before kio keeps kio's strategies.

Only the modules that use kio import it (``messages`` and its readers): a producer that
needs no kio-encoded request (no transactions, no SASL) never loads kio at all.
"""

from __future__ import annotations

import importlib
import sys


def _load_kio_without_hypothesis() -> None:
    if "hypothesis" in sys.modules or "kio.static._phantom" in sys.modules:
        return
    sys.modules["hypothesis"] = None  # type: ignore[assignment]  # `import` raises ImportError
    try:
        importlib.import_module("kio.static._phantom")
    finally:
        if sys.modules.get("hypothesis", 0) is None:
            del sys.modules["hypothesis"]


_load_kio_without_hypothesis()
