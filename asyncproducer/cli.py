"""The ``asyncproducer`` command line: ``produce`` and ``demo``.

Exit codes: 0 success; 1 some records failed, a transaction was aborted, or a runtime
failure such as an unreachable broker; 2 usage or configuration error, with a one-line
message on stderr; 130 interrupted (SIGINT / SIGTERM). User errors
never print a traceback; an unexpected exception (a bug) still does, on purpose.

Producer settings come from dedicated flags (``--acks``, ``--linger-ms``, ...) and from
``-X key=value`` in either key style (``linger.ms=5`` or ``linger_ms=5``). They are
collected as Java-style properties with string values, as in a ``.properties`` file, and
checked by :class:`ProducerConfig` before any I/O, so a typo fails fast with its "did you
mean" hint.
"""

from __future__ import annotations

import argparse
import functools
import getpass
import importlib.util
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio
import anyio.abc

from asyncproducer import __version__
from asyncproducer._cli_demo import DemoPlan, run_demo
from asyncproducer._cli_produce import (
    DEFAULT_TRANSACTION_SIZE,
    ProduceJob,
    TransactionFailedError,
    run_produce,
)
from asyncproducer._config_keys import java_name, unknown_key_message
from asyncproducer._properties import read_properties
from asyncproducer.config import KNOWN_KEYS, ProducerConfig
from asyncproducer.errors import ConfigError, KafkaError, PartitionOutOfRangeError
from asyncproducer.protocol.compression import CompressionType

__all__ = ["UsageError", "main", "producer_properties"]

PROG = "asyncproducer"
DEFAULT_BOOTSTRAP = "localhost:9092"
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """A bad command line the parser itself cannot catch (exit code 2)."""


# --------------------------------------------------------------------------- parsing


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _add_producer_options(parser: argparse.ArgumentParser, bootstrap_help: str) -> None:
    parser.add_argument("--bootstrap-servers", metavar="HOST:PORT[,...]", help=bootstrap_help)
    parser.add_argument("--acks", choices=["0", "1", "all"], help="default: all")
    parser.add_argument(
        "--compression",
        choices=[c.name.lower() for c in CompressionType],
        help="compression.type (default: none)",
    )
    parser.add_argument("--linger-ms", type=_non_negative_int, metavar="N", help="default: 5")
    parser.add_argument(
        "-X",
        dest="config",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any producer setting, Java style (linger.ms=5) or snake_case (linger_ms=5); "
        "repeatable, the last one wins",
    )
    parser.add_argument(
        "--security-protocol",
        choices=["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"],
        type=str.upper,
        help="security.protocol (default: PLAINTEXT)",
    )
    parser.add_argument(
        "--sasl-mechanism",
        choices=["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"],
        type=str.upper,
        help="sasl.mechanism",
    )
    parser.add_argument(
        "--sasl-username",
        metavar="NAME",
        help=f"the password comes from ${PASSWORD_ENV}, else a prompt on the terminal",
    )
    parser.add_argument(
        "--command-config",
        metavar="FILE",
        help="a Java client .properties file (as Kafka's console tools take); -X and the "
        "flags above override its settings",
    )
    parser.add_argument("--backend", choices=["asyncio", "trio"], default="asyncio")


PASSWORD_ENV = "ASYNCPRODUCER_SASL_PASSWORD"
"""Where --sasl-username's password comes from (never from the command line, which other
users of the machine can read in the process list)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="An async Kafka producer (asyncio or trio)."
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    produce = commands.add_parser(
        "produce", help="send each input line as a record", description=_PRODUCE_DESCRIPTION
    )
    produce.add_argument("topic", metavar="TOPIC")
    produce.add_argument("file", metavar="FILE", nargs="?", default="-", help="default: stdin")
    _add_producer_options(produce, f"default: $KAFKA_BOOTSTRAP_SERVERS, else {DEFAULT_BOOTSTRAP}")
    produce.add_argument(
        "--key-separator",
        metavar="SEP",
        help="split each line at the first SEP into key and value (no SEP: no key)",
    )
    produce.add_argument(
        "--header",
        dest="headers",
        action="append",
        default=[],
        metavar="K=V",
        help="add this header to every record (repeatable)",
    )
    produce.add_argument("--partition", type=_non_negative_int, metavar="N")
    produce.add_argument(
        "--transactional-id",
        metavar="ID",
        help="produce in transactions (transactional.id; -X transactional.id=ID is the same)",
    )
    produce.add_argument(
        "--transaction-size",
        type=_positive_int,
        metavar="N",
        help=f"input lines per transaction (default: {DEFAULT_TRANSACTION_SIZE}); "
        "needs a transactional id",
    )

    demo = commands.add_parser(
        "demo", help="produce to a local broker, read back, verify", description=_DEMO_DESCRIPTION
    )
    _add_producer_options(demo, "use this cluster instead of starting Tansu")
    demo.add_argument("--topic", default="asyncproducer-demo")
    demo.add_argument("--partitions", type=_positive_int, default=6)
    demo.add_argument("--count", type=_positive_int, default=100_000)
    demo.add_argument("--value-size", type=_non_negative_int, default=100, metavar="BYTES")
    demo.add_argument("--tasks", type=_positive_int, default=10, help="concurrent sending tasks")
    demo.add_argument(
        "--max-in-flight",
        type=_positive_int,
        default=1_000,
        metavar="N",
        help="unacknowledged records at most; more only adds queueing to the latency",
    )
    return parser


_PRODUCE_DESCRIPTION = """\
Send each line of FILE (or stdin) as one record: bytes as read, without the newline
(a CR before it is dropped too). Prints a summary on stderr; exit code 1 if any record
failed. With a transactional id, the lines go in transactions of --transaction-size
lines, the last one committed at the end of input; a failed record, an error or Ctrl-C
aborts the open transaction and ends the command (exit code 1, or 130), so
read_committed consumers see whole transactions only: the message says which line to
resume from."""

_DEMO_DESCRIPTION = """\
Start an embedded Tansu broker (unless --bootstrap-servers is given), create a topic,
produce --count records from --tasks concurrent tasks, read them all back by Fetch and
verify each one. Prints throughput and acknowledgement latency."""


# --------------------------------------------------------------------------- settings


def parse_assignment(text: str, option: str) -> tuple[str, str]:
    """``"k=v"`` -> ``("k", "v")``; the value may contain ``=``."""
    key, found, value = text.partition("=")
    if not found or not key.strip():
        raise UsageError(f"{option} expects KEY=VALUE, got {text!r}")
    return key.strip(), value


def java_key(key: str) -> str:
    """The Java-style name of a ``-X`` key given in either style."""
    if key in KNOWN_KEYS:
        return java_name(key)
    if "_" in key and "." not in key:
        # Report a snake_case typo in the style the user wrote it.
        raise ConfigError(unknown_key_message(key, KNOWN_KEYS, java_style=False))
    return key


def producer_properties(
    args: argparse.Namespace, *, default_bootstrap: str | None, client_id: str
) -> dict[str, str]:
    """Java-style producer properties from the command line, checked by ProducerConfig."""
    properties: dict[str, str] = {}
    if args.command_config is not None:
        properties.update(
            (java_key(key), value) for key, value in read_properties(args.command_config).items()
        )
    for text in args.config:
        key, value = parse_assignment(text, "-X")
        properties[java_key(key)] = value
    flags = {
        "bootstrap.servers": ("--bootstrap-servers", args.bootstrap_servers),
        "acks": ("--acks", args.acks),
        "compression.type": ("--compression", args.compression),
        "linger.ms": ("--linger-ms", args.linger_ms),
        "security.protocol": ("--security-protocol", args.security_protocol),
        "sasl.mechanism": ("--sasl-mechanism", args.sasl_mechanism),
        "sasl.username": ("--sasl-username", args.sasl_username),
        # produce only
        "transactional.id": ("--transactional-id", getattr(args, "transactional_id", None)),
    }
    for key, (flag, value) in flags.items():
        if value is None:
            continue
        given = properties.get(key)
        if given is not None and given.strip() != str(value):
            # Two different values for one setting: refuse rather than guess which wins.
            raise UsageError(f"{flag} {value} conflicts with -X {key}={given}; give one of them")
        properties[key] = str(value)
    if args.sasl_username is not None and not properties.keys() & {
        "sasl.password",
        "sasl.jaas.config",
    }:
        properties["sasl.password"] = sasl_password(args.sasl_username)
    if default_bootstrap is not None:
        properties.setdefault("bootstrap.servers", default_bootstrap)
    properties.setdefault("client.id", client_id)
    # Check everything now, before any I/O (the demo may not know its broker yet).
    ProducerConfig.from_java_properties({"bootstrap.servers": DEFAULT_BOOTSTRAP, **properties})
    return properties


def sasl_password(username: str) -> str:
    """--sasl-username's password: from the environment, else asked on the terminal."""
    password = os.environ.get(PASSWORD_ENV)
    if password:
        return password
    if not sys.stderr.isatty():
        raise UsageError(
            f"--sasl-username {username} needs a password: set {PASSWORD_ENV} (no terminal "
            "to ask on)"
        )
    return getpass.getpass(f"SASL password for {username}: ")


# --------------------------------------------------------------------------- commands


def _run(backend: str, function: Callable[[], Awaitable[int]]) -> int:
    if backend == "trio" and importlib.util.find_spec("trio") is None:
        raise UsageError("--backend trio needs trio: pip install trio")
    result: int = anyio.run(_until_interrupted, function, backend=backend)
    return result


async def _until_interrupted(function: Callable[[], Awaitable[int]]) -> int:
    """Run ``function``; on SIGINT/SIGTERM cancel it, so the producer closes and the
    summary prints, and return 130.

    Why not let KeyboardInterrupt fly: trio raises it in whatever task is running when
    the signal arrives, which may be one of the producer's background tasks.
    """
    if os.name != "posix":  # no signal receivers on Windows' event loops
        return await function()
    interrupted = False
    result = EXIT_INTERRUPTED

    async def watch(*, task_status: anyio.abc.TaskStatus[None]) -> None:
        nonlocal interrupted
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for _ in signals:
                interrupted = True
                tasks.cancel_scope.cancel()
                return

    async with anyio.create_task_group() as tasks:
        await tasks.start(watch)
        result = await function()
        tasks.cancel_scope.cancel()
    if interrupted:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return result


def _produce(args: argparse.Namespace) -> int:
    default = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_BOOTSTRAP
    properties = producer_properties(args, default_bootstrap=default, client_id="asyncproducer-cli")
    if args.key_separator == "":
        raise UsageError("--key-separator must not be empty")
    headers = [parse_assignment(text, "--header") for text in args.headers]
    transaction_size = _transaction_size(args, properties)
    if args.file == "-":
        fd = sys.stdin.fileno()
    else:
        try:
            fd = os.open(args.file, os.O_RDONLY)
        except OSError as exc:
            raise UsageError(f"cannot read {args.file}: {exc.strerror}") from None
    job = ProduceJob(
        topic=args.topic,
        fd=fd,
        key_separator=None if args.key_separator is None else os.fsencode(args.key_separator),
        headers=tuple((name, os.fsencode(value)) for name, value in headers),
        partition=args.partition,
        transaction_size=transaction_size,
    )
    try:
        return _run(args.backend, functools.partial(run_produce, job, properties))
    finally:
        if args.file != "-":
            os.close(fd)


def _transaction_size(args: argparse.Namespace, properties: dict[str, str]) -> int | None:
    """Records per transaction, or None without a transactional id (from the flag, -X or
    --command-config alike: the producer is transactional either way)."""
    if "transactional.id" not in properties:
        if args.transaction_size is not None:
            raise UsageError(
                "--transaction-size needs a transactional id: --transactional-id ID "
                "(or -X transactional.id=ID)"
            )
        return None
    size: int = args.transaction_size or DEFAULT_TRANSACTION_SIZE
    return size


def _demo(args: argparse.Namespace) -> int:
    properties = producer_properties(args, default_bootstrap=None, client_id="asyncproducer-demo")
    if "transactional.id" in properties:
        # Its sends would all fail outside a transaction: refuse rather than fail 100,000.
        raise UsageError("demo does not produce in transactions: drop transactional.id")
    plan = DemoPlan(
        topic=args.topic,
        partitions=args.partitions,
        count=args.count,
        value_size=args.value_size,
        tasks=args.tasks,
        max_in_flight=args.max_in_flight,
        acks_zero=properties.get("acks", "all").strip() == "0",
    )

    def report(line: str) -> None:
        print(line, flush=True)

    def run(bootstrap: str) -> int:
        with_bootstrap = {**properties, "bootstrap.servers": bootstrap}
        return _run(args.backend, functools.partial(run_demo, plan, with_bootstrap, report))

    if "bootstrap.servers" in properties:
        return run(properties["bootstrap.servers"])
    from asyncproducer.testing.tansu import TansuBroker

    with TansuBroker() as broker:
        report(f"started Tansu on {broker.bootstrap_servers}")
        return run(broker.bootstrap_servers)


# --------------------------------------------------------------------------- errors


def _leaf(exc: BaseException) -> BaseException:
    """The one exception inside (nested) single-member exception groups: AnyIO task groups
    wrap whatever crosses them."""
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


def _exit_code_for(exc: BaseException) -> int | None:
    """The exit code of a user-facing error, or None for a bug (let it raise)."""
    if isinstance(exc, UsageError | ConfigError | PartitionOutOfRangeError):
        return EXIT_USAGE
    if isinstance(exc, FileNotFoundError) and "tansu" in str(exc).lower():
        return EXIT_USAGE  # the demo's broker is not installed: the message says how
    if isinstance(exc, KafkaError | TimeoutError | ConnectionError | TransactionFailedError):
        return EXIT_FAILED
    if isinstance(exc, RuntimeError) and "tansu" in str(exc).lower():
        return EXIT_FAILED
    return None


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format=f"{PROG}: %(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "produce": _produce,
        "demo": _demo,
    }
    try:
        return commands[args.command](args)
    except BaseException as exc:
        leaf: Any = _leaf(exc)
        if isinstance(leaf, KeyboardInterrupt):
            print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        code = _exit_code_for(leaf)
        if code is None:
            raise
        print(f"{PROG} {args.command}: error: {leaf}", file=sys.stderr)
        return code
