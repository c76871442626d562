"""One Apache Kafka KRaft node (a combined broker + controller JVM), and the watchdog.

Kept apart from :mod:`asyncproducer.testing.kafka` so the cluster there reads as the
lifecycle (fetch, format, start together, wait for metadata) and this as the mechanics of
one JVM: its properties, its process group, its log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from asyncproducer.testing.kafka import KafkaCluster

__all__ = ["KafkaNode", "Watchdog", "properties_text"]

# Fastest start and smallest footprint measured on 2 cores: SerialGC (G1 starts more
# threads and reserves more), C1 only (the broker never runs long enough here for C2 to pay
# back its compile time), a 384 MB heap cap (the issue allows 512).
DEFAULT_JVM_OPTIONS: tuple[str, ...] = (
    "-Xms64m",
    "-Xmx384m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Xss512k",
    "-Djava.awt.headless=true",
)


def properties_text(properties: Mapping[str, str]) -> str:
    """``properties`` in ``java.util.Properties`` file syntax, each value escaped, so a
    PEM certificate (newlines) or a password (backslashes) arrives as written."""
    return "".join(f"{key}={_escape_property(value)}\n" for key, value in properties.items())


def _escape_property(value: str) -> str:
    out: list[str] = []
    for char in value:
        if char == "\\":
            out.append("\\\\")
        elif char in _CONTROL_ESCAPES:
            out.append(_CONTROL_ESCAPES[char])
        elif " " <= char <= "~":
            out.append(char)
        else:  # Properties.load reads Latin-1: anything else as UTF-16 \uXXXX escapes
            units = char.encode("utf-16-be")
            out.extend(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2))
    if out and out[0] == " ":
        out[0] = "\\ "  # a leading blank would be skipped as the key/value separator's
    return "".join(out)


_CONTROL_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f"}


_LOG4J2 = """\
status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = {path}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
"""


class KafkaNode:
    """One node of a :class:`~asyncproducer.testing.kafka.KafkaCluster`.

    ``kill()`` is a crash (SIGKILL), ``stop()`` a graceful shutdown, ``start()`` brings the
    node back on the same ports and data, and waits until the cluster sees it.
    """

    def __init__(
        self,
        *,
        node_id: int,
        directory: Path,
        host: str,
        port: int,
        internal_port: int,
        controller_port: int,
        advertised_port: int | None,
        launcher: _Launcher,
        cluster: KafkaCluster,
        client_host: str | None = None,
    ) -> None:
        self.node_id = node_id
        self.directory = directory
        self.host = host
        self.port = port
        # PLAINTEXT, whatever the client listener speaks: replication, and the cluster's
        # own admin probes (readiness, create_topic, describe_topic).
        self.internal_port = internal_port
        self.controller_port = controller_port
        # Where metadata tells clients to connect: a FaultProxy's port, or the node's own.
        self.advertised_port: int = port if advertised_port is None else advertised_port
        # The name clients connect to: the host unless Kerberos needs a name (localhost).
        self.client_host: str = host if client_host is None else client_host
        self._launcher = launcher
        self._cluster = cluster
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "down"
        return f"<KafkaNode {self.node_id} {self.bootstrap_server} {state}>"

    @property
    def bootstrap_server(self) -> str:
        return f"{self.client_host}:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.directory / "server.properties"

    @property
    def log_path(self) -> Path:
        return self.directory / "server.log"

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def write_config(self, properties: Mapping[str, str]) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        # Owner-only: it may hold SASL passwords and TLS keys.
        self.config_path.touch(mode=0o600)
        self.config_path.write_text(properties_text(properties), encoding="ascii")
        log4j = _LOG4J2.format(path=str(self.log_path).replace("\\", "/"))
        (self.directory / "log4j2.properties").write_text(log4j, encoding="utf-8")

    def java_command(self, main_class: str, *arguments: str) -> list[str]:
        launcher = self._launcher
        return [
            launcher.java,
            *launcher.jvm_options,
            f"-Dlog4j2.configurationFile={self.directory / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.directory}",
            "-cp",
            str(launcher.libs / "*"),
            main_class,
            *arguments,
        ]

    def launch(self) -> None:
        """Start the JVM without waiting for it (the cluster waits for all nodes at once)."""
        if self.running:
            return
        self._close_output()
        # stdout/stderr to a file, not a pipe: nobody reads them while the JVM runs, and a
        # full pipe would stall the broker. log4j writes server.log beside it.
        self._output = (self.directory / "stdout.log").open("ab")
        self._process = subprocess.Popen(
            self.java_command("kafka.Kafka", str(self.config_path)),
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
            # Its own process group: the watchdog and kill() end the JVM and anything it
            # forks as one, and a Ctrl-C meant for pytest does not reach it half-way.
            start_new_session=True,
        )
        self._launcher.watchdog.watch(self._process.pid)

    def start(self, timeout: float | None = None) -> None:
        """Start the node again (same ports and data); wait until every running node lists
        it, up to ``timeout`` s (default: the cluster's ``startup_timeout``)."""
        self._cluster.start_node(self, timeout)

    def kill(self) -> None:
        """SIGKILL the JVM, like a crash or a power cut; returns once it has exited."""
        self._end(graceful=False, timeout=10.0)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (Kafka's controlled shutdown); SIGKILL if it takes over ``timeout`` s."""
        self._end(graceful=True, timeout=timeout)

    def _end(self, *, graceful: bool, timeout: float) -> None:
        process, self._process = self._process, None
        if process is not None:
            if process.poll() is None:
                self._signal_group(process.pid, signal.SIGTERM if graceful else signal.SIGKILL)
                try:
                    process.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self._signal_group(process.pid, signal.SIGKILL)
                    process.wait(timeout=10.0)
            self._launcher.watchdog.forget(process.pid)
        self._close_output()

    @staticmethod
    def _signal_group(pgid: int, signum: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):  # already gone
            os.killpg(pgid, signum)

    def _close_output(self) -> None:
        output, self._output = self._output, None
        if output is not None:
            output.close()

    def log_tail(self, size: int = 3000) -> str:
        """The end of the node's log (server.log, else the JVM's own output)."""
        for path in (self.log_path, self.directory / "stdout.log"):
            try:
                with path.open("rb") as log:
                    log.seek(0, os.SEEK_END)
                    log.seek(max(log.tell() - size, 0))
                    text = log.read().decode(errors="replace")
            except OSError:
                continue
            if text.strip():
                return text
        return "(the node wrote no log)"


class _Launcher:
    """What every node of one cluster starts its JVM with."""

    def __init__(
        self, java: str, libs: Path, jvm_options: Sequence[str], watchdog: Watchdog
    ) -> None:
        self.java = java
        self.libs = libs
        self.jvm_options: tuple[str, ...] = tuple(jvm_options)
        self.watchdog = watchdog


# The watchdog's whole program. It learns process groups on stdin ("+PGID" / "-PGID"), and
# kills the remaining ones when stdin closes (the parent closed it, or died: the kernel
# closes a dead process's descriptors, even after SIGKILL) or when it is re-parented (the
# parent died while some forked child still holds the pipe). Then it removes the data dir.
_WATCHDOG = """\
import os, select, shutil, signal, sys, time
parent, data_dir = int(sys.argv[1]), sys.argv[2]
groups, pending = set(), b""
while True:
    readable, _, _ = select.select([0], [], [], 0.5)
    if readable:
        chunk = os.read(0, 4096)
        if not chunk:
            break
        *lines, pending = (pending + chunk).split(b"\\n")
        for line in lines:
            (groups.add if line[:1] == b"+" else groups.discard)(int(line[1:]))
    elif os.getppid() != parent:
        break
for group in groups:
    try:
        os.killpg(group, signal.SIGKILL)
    except OSError:
        pass
if data_dir and groups:
    time.sleep(0.5)
if data_dir:
    shutil.rmtree(data_dir, ignore_errors=True)
"""


class Watchdog:
    """A tiny Python process that kills a cluster's JVMs if the test process dies.

    Why a process and not ``prctl(PR_SET_PDEATHSIG)``: the death signal fires when the
    *thread* that forked the child exits, and ``async with KafkaCluster()`` starts JVMs
    from AnyIO worker threads, which come and go; it is also Linux-only and needs a
    ``preexec_fn``, which is unsafe in threaded programs. The watchdog works on any POSIX
    system and survives a SIGKILL of the test process, which atexit handlers do not.
    """

    def __init__(self, data_dir: Path | None) -> None:
        self._process: subprocess.Popen[bytes] | None = subprocess.Popen(
            [sys.executable, "-I", "-c", _WATCHDOG, str(os.getpid()), str(data_dir or "")],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Its own session, so the Ctrl-C or process-group kill that ends pytest does not
            # end the watchdog before it has done its job.
            start_new_session=True,
        )

    def watch(self, pgid: int) -> None:
        self._send(f"+{pgid}\n")

    def forget(self, pgid: int) -> None:
        self._send(f"-{pgid}\n")

    def _send(self, line: str) -> None:
        process = self._process
        if process is not None and process.stdin is not None:
            try:
                process.stdin.write(line.encode())
                process.stdin.flush()
            except BrokenPipeError:
                pass  # it died; the cluster's own cleanup still runs

    def close(self) -> None:
        """Close its stdin (it then kills what is left, removes the data dir) and reap it."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                process.stdin.close()
        try:
            process.wait(timeout=10.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5.0)
