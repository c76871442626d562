"""A Confluent Schema Registry stand-in on loopback, for the tests and docs/schema-registry.md.

It answers the REST calls confluent-kafka's ``AsyncSchemaRegistryClient`` makes for its
Avro serializer and deserializer, kept in memory:

- ``POST /subjects/{subject}/versions``: register a schema under a subject, answer its id
  (the same schema text gets the same id, under any subject, as the real registry does);
- ``POST /subjects/{subject}``: look a schema up under a subject (404, error 40403, if it
  is not registered there);
- ``GET /schemas/ids/{id}``: the schema with that id (404, error 40403, if none);
- ``GET /subjects``, ``GET /subjects/{subject}/versions``,
  ``GET /subjects/{subject}/versions/{version|latest}``;
- ``GET /associations/resources/{namespace}/{topic}``: none (an empty list), so that
  the client's default subject name strategy falls back to ``<topic>-key``/``-value``.

Anything else is a 404. Query parameters (``normalize``, ``deleted``, ``format``) are
ignored. The server is HTTP/1.1 over AnyIO sockets with keep-alive, run on an event loop
of its own in a thread (:class:`SchemaRegistryStub` is a plain context manager), so it
serves whatever loop the client runs on, and while the caller blocks.

``requests`` records each ``(method, path)``; ``failure`` makes every answer an error
(a status the client does not retry); ``delay_s`` holds each answer back.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import unquote

import anyio
import anyio.abc
from anyio.from_thread import start_blocking_portal
from anyio.streams.buffered import BufferedByteReceiveStream

__all__ = ["RegistryState", "SchemaRegistryStub"]

_CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
_GONE = (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError, OSError)
_MAX_HEAD = 64 * 1024

Answer = tuple[int, Any]
"""An HTTP status and the JSON body to send with it."""


@dataclass
class RegistryState:
    """Subjects and schemas, as the stand-in keeps them."""

    schemas: list[dict[str, Any]] = field(default_factory=list)
    """By id - 1: ``{"schema": text}`` plus ``schemaType`` and ``references`` if given."""
    subjects: dict[str, list[int]] = field(default_factory=dict)
    """Each subject's schema ids, by version - 1."""

    def register(self, subject: str, body: dict[str, Any]) -> Answer:
        schema = _schema_of(body)
        if schema is None:
            return _error(422, 42201, "a schema must be given as a string")
        schema_id = self._id_of(schema)
        if schema_id is None:
            self.schemas.append(schema)
            schema_id = len(self.schemas)
        versions = self.subjects.setdefault(subject, [])
        if schema_id not in versions:
            versions.append(schema_id)
        return 200, self._version(subject, versions.index(schema_id) + 1)

    def lookup(self, subject: str, body: dict[str, Any]) -> Answer:
        schema = _schema_of(body)
        schema_id = None if schema is None else self._id_of(schema)
        versions = self.subjects.get(subject)
        if versions is None:
            return _error(404, 40401, f"Subject '{subject}' not found.")
        if schema_id is None or schema_id not in versions:
            return _error(404, 40403, "Schema not found")
        return 200, self._version(subject, versions.index(schema_id) + 1)

    def schema_by_id(self, schema_id: int) -> Answer:
        if not 1 <= schema_id <= len(self.schemas):
            return _error(404, 40403, "Schema not found")
        return 200, dict(self.schemas[schema_id - 1])

    def version(self, subject: str, version: str) -> Answer:
        versions = self.subjects.get(subject)
        if versions is None:
            return _error(404, 40401, f"Subject '{subject}' not found.")
        number = len(versions) if version == "latest" else int(version)
        if not 1 <= number <= len(versions):
            return _error(404, 40402, f"Version {version} not found.")
        return 200, self._version(subject, number)

    def _version(self, subject: str, version: int) -> dict[str, Any]:
        schema_id = self.subjects[subject][version - 1]
        return {
            "subject": subject,
            "version": version,
            "id": schema_id,
            **self.schemas[schema_id - 1],
        }

    def _id_of(self, schema: dict[str, Any]) -> int | None:
        for index, known in enumerate(self.schemas):
            if known == schema:
                return index + 1
        return None


def _schema_of(body: dict[str, Any]) -> dict[str, Any] | None:
    """What identifies a schema in a request: its text, type (AVRO unless given) and
    references."""
    text = body.get("schema")
    if not isinstance(text, str):
        return None
    schema: dict[str, Any] = {"schema": text}
    if body.get("schemaType", "AVRO") != "AVRO":
        schema["schemaType"] = body["schemaType"]
    if body.get("references"):
        schema["references"] = body["references"]
    return schema


def _error(status: int, code: int, message: str) -> Answer:
    return status, {"error_code": code, "message": message}


# (method, path pattern, handler(state, the path's parts, body)); the parts unquoted.
_Handler = Callable[[RegistryState, list[str], Any], Answer]
_SEGMENT = r"([^/]+)"
_ROUTES: list[tuple[str, re.Pattern[str], _Handler]] = [
    ("POST", re.compile(rf"/subjects/{_SEGMENT}/versions"), lambda s, p, b: s.register(p[0], b)),
    ("POST", re.compile(rf"/subjects/{_SEGMENT}"), lambda s, p, b: s.lookup(p[0], b)),
    ("GET", re.compile(r"/schemas/ids/(\d+)"), lambda s, p, b: s.schema_by_id(int(p[0]))),
    ("GET", re.compile(r"/subjects"), lambda s, p, b: (200, sorted(s.subjects))),
    (
        "GET",
        re.compile(rf"/subjects/{_SEGMENT}/versions"),
        lambda s, p, b: (200, list(range(1, len(s.subjects.get(p[0], [])) + 1))),
    ),
    (
        "GET",
        re.compile(rf"/subjects/{_SEGMENT}/versions/(latest|\d+)"),
        lambda s, p, b: s.version(p[0], p[1]),
    ),
    (
        "GET",
        re.compile(rf"/associations/resources/{_SEGMENT}/{_SEGMENT}"),
        lambda s, p, b: (200, []),
    ),
]


def _route(state: RegistryState, method: str, path: str, body: Any) -> Answer:
    for route_method, pattern, handler in _ROUTES:
        match = pattern.fullmatch(path)
        if match is not None and route_method == method:
            return handler(state, [unquote(part) for part in match.groups()], body or {})
    return _error(404, 404, f"{method} {path}: not served by this stand-in")


class SchemaRegistryStub(AbstractContextManager["SchemaRegistryStub"]):
    """The stand-in, serving on ``url`` (``http://127.0.0.1:PORT``) while in its ``with``."""

    def __init__(self) -> None:
        self.state = RegistryState()
        self.requests: list[tuple[str, str]] = []
        self.failure: tuple[int, str] | None = None
        """``(status, message)``: answer every request with this error."""
        self.delay_s = 0.0
        self.url = ""
        self._lock = threading.Lock()  # requests and state are read from the test's thread
        self._stack = ExitStack()

    def __enter__(self) -> SchemaRegistryStub:
        portal = self._stack.enter_context(start_blocking_portal("asyncio"))
        serving: Future[None]
        serving, port = portal.start_task(self._serve, name="schema registry stub")
        self._stack.callback(serving.cancel)  # before the portal stops (LIFO)
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._stack.close()

    async def _serve(self, *, task_status: anyio.abc.TaskStatus[int]) -> None:
        listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
        async with listener:
            task_status.started(listener.extra(anyio.abc.SocketAttribute.local_port))
            await listener.serve(self._connection)

    async def _connection(self, stream: anyio.abc.SocketStream) -> None:
        async with stream:
            try:
                await self._requests(stream)
            except _GONE:  # the client went away (it gave up waiting, say): not our failure
                return

    async def _requests(self, stream: anyio.abc.SocketStream) -> None:
        """Keep-alive: answer requests one after the other until the client closes."""
        receive = BufferedByteReceiveStream(stream)
        while True:
            try:
                head = await receive.receive_until(b"\r\n\r\n", _MAX_HEAD)
            except anyio.IncompleteRead:
                return
            method, path, length = _parse_head(head)
            body = json.loads(await receive.receive_exactly(length)) if length else None
            status, answer = self._answer(method, path, body)
            if self.delay_s:
                await anyio.sleep(self.delay_s)
            await stream.send(_response(status, answer))

    def _answer(self, method: str, path: str, body: Any) -> Answer:
        with self._lock:
            self.requests.append((method, path))
            if self.failure is not None:
                status, message = self.failure
                return _error(status, status * 100, message)
            return _route(self.state, method, path, body)


def _parse_head(head: bytes) -> tuple[str, str, int]:
    """The method, the path (without its query) and the Content-Length."""
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, target, _ = request_line.split(" ", 2)
    length = 0
    for line in header_lines:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return method, target.split("?", 1)[0], length


def _response(status: int, body: Any) -> bytes:
    payload = json.dumps(body).encode()
    head = (
        f"HTTP/1.1 {status} {'OK' if status < 400 else 'Error'}\r\n"
        f"Content-Type: {_CONTENT_TYPE}\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload
