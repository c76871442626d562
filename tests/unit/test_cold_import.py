"""What a new process loads to run a producer on asyncio (a cold start: serverless
functions, CLIs, short jobs; ``python -m benchmarks.cold_start`` measures it): none of
kio (the producer's own requests and responses are encoded by hand), Hypothesis (kio
would import it to register strategies: tests have it installed, so this runs where it
is), trio, pytest, the SASL mechanisms of a producer without SASL, codecs it does not use,
or the crc32c package where the extension computes the checksum."""

from __future__ import annotations

import json
import subprocess
import sys

NOT_NEEDED = (
    "kio",
    "hypothesis",
    "trio",
    "pytest",
    "asyncproducer._sasl",
    "asyncproducer.protocol.sasl",
    "zstandard",
    "lz4",
    "cramjam",
    "crc32c",
    "encodings.idna",  # the bootstrap address is ASCII
)

CHILD = f"""
import asyncio, json, sys
from asyncproducer import Producer

async def main():
    async with Producer("127.0.0.1:1", client_id="cold") as producer:
        producer.metrics()

asyncio.run(main())
print(json.dumps([m for m in {NOT_NEEDED!r} if sys.modules.get(m) is not None]))
"""


def _output_of(code: str) -> str:
    """What a new interpreter running ``code`` prints."""
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    return run.stdout


def test_a_producer_on_asyncio_loads_only_what_it_uses() -> None:
    assert json.loads(_output_of(CHILD)) == []


def test_kio_loaded_later_still_leaves_hypothesis_out() -> None:
    """A producer that does need kio (transactions, SASL) loads it without Hypothesis."""
    code = (
        "import sys\n"
        "from asyncproducer import Producer\n"
        "from asyncproducer.protocol.messages import end_txn_request\n"
        "end_txn_request(3, transactional_id='t', producer_id=1, producer_epoch=0, commit=True)\n"
        "print('kio' in sys.modules, sys.modules.get('hypothesis') is not None)\n"
    )
    assert _output_of(code).split() == ["True", "False"]


def test_hypothesis_imported_first_keeps_kios_strategies() -> None:
    """A process that imported Hypothesis before asyncproducer (a test session using kio's
    strategies) gets them registered, as kio does on its own."""
    code = (
        "import hypothesis.strategies as st\n"
        "import asyncproducer.errors\n"
        "from kio.static.primitive import i32\n"
        "print(st.from_type(i32).example() in range(-2**31, 2**31))\n"
    )
    assert _output_of(code).strip() == "True"
