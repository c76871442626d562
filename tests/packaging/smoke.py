"""The installed package, as a user gets it: run by a fresh venv's Python that holds only
asyncproducer (from the wheel or the sdist) and its runtime dependencies.

    VENV/bin/python -I smoke.py --bootstrap-servers HOST:PORT --topic T --count N --speedups yes

Imports nothing but asyncproducer and the standard library. Checks that the package comes
from this venv (not a source tree), that the C extension is there or not as expected, the
version (``python -m asyncproducer --version`` and the console script), then produces
``--count`` keyed records with headers (acks=all, idempotent, lz4) and prints, as one JSON
line, where the broker put each: ``tests/packaging/verify.py`` reads them back with
another client and checks every one.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any


def record(i: int) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """Record ``i``'s key, value and headers (verify.py rebuilds them to compare)."""
    key = b"key-%d" % (i % 37)
    value = b"value-%d-" % i + b"lz4 compresses this " * 5
    return key, value, [("index", b"%d" % i)]


def check_installation(expect_speedups: bool) -> dict[str, Any]:
    import asyncproducer
    from asyncproducer.protocol import batch_records

    location = Path(asyncproducer.__file__).resolve()
    prefix = Path(sys.prefix).resolve()
    assert location.is_relative_to(prefix), f"imported from {location}, not from {prefix}"
    assert "site-packages" in location.parts, f"imported from {location}, not site-packages"
    version = importlib.metadata.version("asyncproducer")
    assert asyncproducer.__version__ == version, (asyncproducer.__version__, version)
    extension = importlib.util.find_spec("asyncproducer._speedups")
    assert batch_records.SPEEDUPS is expect_speedups, (
        f"SPEEDUPS is {batch_records.SPEEDUPS}, expected {expect_speedups} "
        f"(extension: {extension and extension.origin})"
    )
    assert (extension is not None) is expect_speedups, extension
    expected_version = f"asyncproducer {version}"
    scripts = Path(sys.executable).parent
    for command in ([sys.executable, "-m", "asyncproducer"], [str(scripts / "asyncproducer")]):
        run = subprocess.run([*command, "--version"], capture_output=True, text=True, check=True)
        assert run.stdout.strip() == expected_version, (command, run.stdout, run.stderr)
    return {
        "file": str(location),
        "version": version,
        "speedups": batch_records.SPEEDUPS,
        "extension": extension and extension.origin,
    }


async def produce(bootstrap_servers: str, topic: str, count: int) -> list[list[int]]:
    from asyncproducer import Producer

    async with Producer(
        bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        compression_type="lz4",
        linger_ms=5,
    ) as producer:
        futures = []
        for i in range(count):
            key, value, headers = record(i)
            futures.append(await producer.send(topic, value, key=key, headers=headers))
        placements = []
        for future in futures:
            metadata = await future
            assert metadata.topic == topic, metadata
            assert metadata.offset >= 0, metadata
            placements.append([metadata.partition, metadata.offset])
    return placements


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap-servers", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--speedups", choices=["yes", "no"], required=True)
    args = parser.parse_args()
    report = check_installation(expect_speedups=args.speedups == "yes")
    report["placements"] = asyncio.run(produce(args.bootstrap_servers, args.topic, args.count))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
