"""``python -m asyncproducer`` and the ``asyncproducer`` console script (see :mod:`.cli`)."""

from __future__ import annotations

import sys

from asyncproducer.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
