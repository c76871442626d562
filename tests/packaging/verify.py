"""What ``.ci/wheel-smoke`` built and installed, checked: run by the project's venv
(Tansu, confluent-kafka), from the repository root.

    .venv/bin/python -m tests.packaging.verify --dist DIR [--smoke VENV:yes|no ...]

``--dist``: the sdist and the wheel (``python -m build``), checked for what they must hold
and must not. Each ``--smoke``: a fresh venv with asyncproducer installed, whose Python
runs ``smoke.py`` (``yes``/``no``: whether the C extension must be there) against one
Tansu broker; confluent-kafka, a client we did not write, then reads every record back and
checks it against what the producer was acknowledged.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

from asyncproducer import __version__
from asyncproducer.testing.tansu import TansuBroker
from tests.integration.independent import consume, create_topic
from tests.packaging.smoke import record

REPO = Path(__file__).resolve().parents[2]
SMOKE = Path(__file__).with_name("smoke.py")
PARTITIONS = 3

# The sdist: the sources a build needs, and nothing a build or a checkout leaves around.
SDIST_REQUIRED = {
    "PKG-INFO",
    "README.md",
    "CHANGELOG.md",
    "LICENSE",
    "pyproject.toml",
    "setup.py",
    "asyncproducer/py.typed",
    "asyncproducer/_speedups.pyi",
    "asyncproducer/_speedups.h",
}
SDIST_FORBIDDEN = re.compile(
    r"\.(so|pyd|o|pyc)$|__pycache__|(^|/)(\.venv|\.nox|\.git|build|dist|tests|benchmarks"
    r"|docs|examples|site)/"
)


def package_files(root: Path, suffix: str) -> set[str]:
    """The repository's ``asyncproducer/**/*{suffix}``, relative to ``root``'s parent."""
    return {
        path.relative_to(root.parent).as_posix()
        for path in root.rglob(f"*{suffix}")
        if "__pycache__" not in path.parts
    }


def check_distributions(dist: Path) -> tuple[Path, Path]:
    wheels = sorted(dist.glob("*.whl"))
    sdists = sorted(dist.glob("*.tar.gz"))
    assert len(wheels) == 1, wheels
    assert len(sdists) == 1, sdists
    wheel, sdist = wheels[0], sdists[0]
    assert re.fullmatch(
        rf"asyncproducer-{re.escape(__version__)}-cp311-abi3-linux_\w+\.whl", wheel.name
    ), f"{wheel.name}: not a cp311-abi3 wheel of version {__version__}"
    assert sdist.name == f"asyncproducer-{__version__}.tar.gz", sdist.name

    sources = package_files(REPO / "asyncproducer", ".py")
    c_sources = package_files(REPO / "asyncproducer", ".c")
    assert c_sources, "no C sources found in the repository"

    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = f"asyncproducer-{__version__}.dist-info"
        metadata = archive.read(f"{info}/METADATA").decode()
        tags = archive.read(f"{info}/WHEEL").decode()
    in_wheel = {name for name in names if name.endswith(".py")}
    assert in_wheel == sources, (
        f"the wheel lacks {sorted(sources - in_wheel)}, has extra {sorted(in_wheel - sources)}"
    )
    extensions = {name for name in names if name.endswith((".so", ".pyd"))}
    assert extensions == {"asyncproducer/_speedups.abi3.so"}, extensions
    assert {"asyncproducer/py.typed", "asyncproducer/_speedups.pyi"} <= names
    assert not {name for name in names if name.endswith((".c", ".h", ".pyc"))}
    assert "License-Expression: Apache-2.0" in metadata
    assert "Root-Is-Purelib: false" in tags, tags
    assert "Tag: cp311-abi3-linux_" in tags, tags

    prefix = f"asyncproducer-{__version__}/"
    with tarfile.open(sdist) as archive:
        members = {
            member.name.removeprefix(prefix) for member in archive.getmembers() if member.isfile()
        }
    missing = (SDIST_REQUIRED | c_sources | sources) - members
    assert not missing, f"the sdist lacks {sorted(missing)}"
    junk = sorted(name for name in members if SDIST_FORBIDDEN.search(name))
    assert not junk, f"the sdist holds {junk}"
    print(
        f"dist: {wheel.name} ({len(names)} files, {wheel.stat().st_size // 1024} KiB), "
        f"{sdist.name} ({len(members)} files, {sdist.stat().st_size // 1024} KiB)"
    )
    return wheel, sdist


def installed_extensions(venv: Path) -> list[str]:
    return sorted(
        str(path)
        for path in venv.glob("lib/python3*/site-packages/asyncproducer/_speedups*")
        if path.suffix in (".so", ".pyd")
    )


def smoke(venv: Path, expect_speedups: bool, bootstrap_servers: str, count: int) -> None:
    """``smoke.py`` under ``venv``'s Python, then every record read back and compared."""
    name = venv.name
    topic = f"smoke-{name}-{os.getpid()}"
    create_topic(bootstrap_servers, topic, PARTITIONS)
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env.pop("ASYNCPRODUCER_NO_SPEEDUPS", None)
    started = time.monotonic()
    # -I: neither the script's directory nor PYTHONPATH on sys.path; from outside the
    # repository, so that no source tree can be what is imported.
    run = subprocess.run(
        [
            *(str(venv / "bin" / "python"), "-I", str(SMOKE)),
            *("--bootstrap-servers", bootstrap_servers, "--topic", topic),
            *("--count", str(count), "--speedups", "yes" if expect_speedups else "no"),
        ],
        cwd=venv.parent,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if run.returncode:
        sys.exit(f"{name}: smoke.py failed ({run.returncode}):\n{run.stdout}\n{run.stderr}")
    report = json.loads(run.stdout.splitlines()[-1])
    elapsed = time.monotonic() - started
    assert Path(report["file"]).is_relative_to(venv.resolve()), report["file"]
    extensions = installed_extensions(venv)
    assert bool(extensions) is expect_speedups, (name, extensions)

    placements = [tuple(placement) for placement in report["placements"]]
    assert len(placements) == count, f"{name}: {len(placements)} acknowledged of {count}"
    assert len(set(placements)) == count, f"{name}: two records at one offset"
    consumed = consume(bootstrap_servers, topic, list(range(PARTITIONS)), count)
    assert len(consumed) == count, f"{name}: read back {len(consumed)} of {count}"
    by_place = {(r.partition, r.offset): r for r in consumed}
    for i, place in enumerate(placements):
        got = by_place.get(place)
        assert got is not None, f"{name}: record {i} acknowledged at {place} is not there"
        key, value, headers = record(i)
        assert (got.key, got.value) == (key, value), (name, i, place, got)
        assert list(got.headers) == headers, (name, i, got.headers)
    used = sorted({partition for partition, _ in placements})
    print(
        f"{name}: asyncproducer {report['version']} from {report['file']}, "
        f"SPEEDUPS={report['speedups']} ({extensions[0] if extensions else 'no extension'}); "
        f"{count} records (keyed, headers, lz4, acks=all, idempotent) to partitions {used} "
        f"in {elapsed:.1f} s, all read back by confluent-kafka"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dist", type=Path, help="the sdist and wheel to check")
    parser.add_argument(
        "--smoke", action="append", default=[], metavar="VENV:yes|no", help="a venv to run"
    )
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    if args.dist:
        check_distributions(args.dist)
    if args.smoke:
        with TansuBroker() as broker:
            for spec in args.smoke:
                venv, _, speedups = spec.rpartition(":")
                assert speedups in ("yes", "no"), spec
                smoke(Path(venv), speedups == "yes", broker.bootstrap_servers, args.count)


if __name__ == "__main__":
    main()
