"""Developer sessions: ``nox -s tests``, ``nox -s lint``, ``nox -s typecheck``, ``nox -s demo``,
``nox -s faults``, ``nox -s bench``, ``nox -s scale``, ``nox -s docs``."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
nox.options.default_venv_backend = "venv"


@nox.session
def tests(session: nox.Session) -> None:
    """The whole suite: unit, network faults, and integration against a real broker."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff, and the public API's type completeness (pyright --verifytypes, >= 95 %)."""
    # The integrations' frameworks: the public types built on them are unknown without them.
    extras = "fastapi,aiohttp,prometheus,opentelemetry"
    session.install("-e", f".[{extras}]", "ruff>=0.6", "pyright>=1.1.390")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("python", ".ci/verifytypes.py")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[test]", "mypy>=1.11")
    session.run("mypy")


@nox.session
def demo(session: nox.Session) -> None:
    """Start an embedded broker, produce one batch, read it back."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "asyncproducer", "demo", *session.posargs)


@nox.session
def faults(session: nox.Session) -> None:
    """The fault matrix and reliability report (docs/reliability.md); fails if a delivery
    guarantee broke. ``nox -s faults -- --seed 42 --markdown`` passes options on."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "benchmarks.faults", *session.posargs)


@nox.session
def bench(session: nox.Session) -> None:
    """The peer benchmark (docs/benchmarks.md): asyncproducer vs aiokafka vs confluent-kafka
    on one Tansu broker, with charts. ``nox -s bench -- --quick`` passes options on."""
    session.install("-e", ".[test,bench]")
    args = session.posargs or [
        "--markdown",
        "--json",
        "benchmarks/results/peers.json",
        "--charts",
        "benchmarks/results",
    ]
    session.run("python", "-m", "benchmarks", *args)


@nox.session
def scale(session: nox.Session) -> None:
    """The scale benchmark (docs/scale.md): cost against partitions, topics, tasks and
    records in flight, and memory while the broker stalls. ``nox -s scale -- --quick``
    passes options on."""
    session.install("-e", ".[test]")
    args = session.posargs or ["--markdown", "--json", "benchmarks/results/scale.json"]
    session.run("python", "-m", "benchmarks.scale", *args)


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site (mkdocs.yml) into site/, with every warning an error.
    ``nox -s docs -- serve`` serves it at http://127.0.0.1:8000 and rebuilds on changes."""
    session.install("-e", ".[docs]")
    # Material's end-of-life notice (docs/development.md says what it says): not a build
    # warning, and printed on every build, where a real warning should stand out.
    env = {"NO_MKDOCS_2_WARNING": "1"}
    if session.posargs[:1] == ["serve"]:
        session.run("mkdocs", "serve", "--strict", *session.posargs[1:], env=env)
    else:
        session.run("mkdocs", "build", "--strict", *session.posargs, env=env)
