from __future__ import annotations

from typing import Any

import pytest

BACKENDS = [
    pytest.param("asyncio", id="asyncio"),
    # What uvicorn[standard] runs a FastAPI app on: its transports are not asyncio's classes.
    pytest.param(("asyncio", {"use_uvloop": True}), id="uvloop"),
    pytest.param("trio", id="trio"),
]
"""Every async test runs on each: AnyIO's pytest plugin reads (name, options) pairs."""

ASYNCIO_BACKENDS = BACKENDS[:2]
"""For tests of an asyncio-only surface (asyncio.Future combinators): plain and uvloop."""


@pytest.fixture(params=BACKENDS)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    """Every async test runs on asyncio, asyncio with uvloop, and trio; a test that needs
    the name alone takes AnyIO's ``anyio_backend_name`` fixture."""
    return request.param
