"""The optional C extension ``asyncproducer._speedups``, or None.

None where it did not build at install time (no C compiler or Python headers), and when
the environment sets ``ASYNCPRODUCER_NO_SPEEDUPS=1``: then the producer runs its
pure-Python path, the same records and results, slower (for tests of that path, and to
rule the extension out when debugging).
"""

from __future__ import annotations

import os
from types import ModuleType


def _load() -> ModuleType | None:
    if os.environ.get("ASYNCPRODUCER_NO_SPEEDUPS") == "1":
        return None
    try:
        from asyncproducer import _speedups
    except ImportError:
        return None
    return _speedups


speedups: ModuleType | None = _load()
