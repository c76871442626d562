"""The pytest plugin, as a user's project sees it: pytest runs in a subprocess on a fresh
project, so the fixtures can only come from the ``pytest11`` entry point."""

from __future__ import annotations

import contextlib
import importlib.metadata
import re
from pathlib import Path

import anyio
import pytest

from asyncproducer import Producer
from asyncproducer.testing.pytest_plugin import _start_threaded_fake

pytest_plugins = ["pytester"]


def _entry_point_installed() -> bool:
    return any(
        ep.value == "asyncproducer.testing.pytest_plugin"
        for ep in importlib.metadata.entry_points(group="pytest11")
    )


def test_the_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    # An install made before the entry point existed lacks it: reinstall (pip install -e .).
    assert _entry_point_installed()


DOCS_PAGE = Path(__file__).resolve().parents[2] / "docs" / "testing.md"

# Each backend runs every test once; a user's conftest.py does this (docs/testing.md).
CONFTEST = """
import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request):
    return request.param
"""

# The user's pytest configuration: warnings are errors, so the plugin must not emit any.
INI = """
[pytest]
filterwarnings = error
"""

TINY_PROJECT = """
import pytest

pytestmark = pytest.mark.anyio


async def test_mock_producer(mock_producer):
    metadata = await mock_producer.send_and_wait("orders", b"v", key=b"k")
    assert metadata.offset == 0
    assert [r.value for r in mock_producer.history()] == [b"v"]


async def test_fake_cluster(fake_cluster, producer_factory):
    producer = await producer_factory(bootstrap_servers=fake_cluster.bootstrap_servers)
    metadata = await producer.send_and_wait("orders", b"v", key=b"k")
    stored = fake_cluster.records("orders", metadata.partition)
    assert [(r.offset, r.key, r.value) for r in stored] == [(0, b"k", b"v")]
"""


def _run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    # -p no:cacheprovider: nothing written into the temporary project but what we wrote.
    # -p no:asyncio: pytest-asyncio (in this venv, not the example's concern) warns about
    # its unset loop-scope option, which the example's warnings-as-errors would fail on.
    options = ["-p", "no:cacheprovider", "-p", "no:asyncio"]
    return pytester.runpytest_subprocess(*options, *args, timeout=120)


def test_fixtures_come_from_the_entry_point(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_tiny=TINY_PROJECT)
    result = _run(pytester)
    result.assert_outcomes(passed=4)
    # Without the plugin the same fixtures do not exist: they came from the entry point.
    result = _run(pytester, "-p", "no:asyncproducer")
    result.assert_outcomes(errors=4)
    result.stdout.fnmatch_lines(["*fixture 'mock_producer' not found*"])


def test_kafka_bootstrap_servers_from_the_environment(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka.example:9092")
    pytester.makepyfile(
        test_env="""
        def test_servers(kafka_bootstrap_servers):
            assert kafka_bootstrap_servers == "kafka.example:9092"
        """
    )
    _run(pytester).assert_outcomes(passed=1)


def test_the_docs_examples_pass(pytester: pytest.Pytester) -> None:
    """The pytest files in docs/testing.md (```text blocks that test_docs.py cannot exec,
    since they need pytest and the app module) run as a user would run them."""
    files = _docs_files()
    assert {"app.py", "conftest.py", "test_orders_mock.py", "test_orders_fake.py"} <= set(files)
    pytester.makeini(INI)
    for name, source in files.items():
        pytester.path.joinpath(name).write_text(source)
    result = _run(pytester)
    result.assert_outcomes(passed=8)  # 4 tests x (asyncio, trio)


def _docs_files() -> dict[str, str]:
    """The code blocks of docs/testing.md whose first line is ``# <file name>.py``."""
    blocks = re.findall(r"```(?:python|text)\n# (\w+\.py)\n(.*?)```", DOCS_PAGE.read_text(), re.S)
    return dict(blocks)


@pytest.mark.anyio
async def test_session_fake_serves_any_event_loop() -> None:
    """The fallback behind ``kafka_bootstrap_servers``: a FakeCluster on its own loop in a
    thread, reached over TCP from this test's loop (asyncio or trio)."""
    with contextlib.ExitStack() as stack:
        servers = await anyio.to_thread.run_sync(_start_threaded_fake, stack)
        assert servers is not None
        async with Producer(servers) as producer:
            metadata = await producer.send_and_wait("t", b"v", partition=0)
        assert metadata.offset == 0
        await anyio.to_thread.run_sync(stack.close)
