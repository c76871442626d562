"""A small OAuth 2 token endpoint on loopback, for the client-credentials provider's tests:
it checks HTTP Basic auth and the form, then answers with what the test says."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

Answer = Callable[[dict[str, str]], tuple[int, dict[str, object]]]
"""Given the form posted, (HTTP status, JSON body)."""


def unsecured_jws(subject: str, expires_in_s: float) -> str:
    """A token Kafka's unsecured OAUTHBEARER validator accepts: ``alg: none``, no signature."""

    def part(claims: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()

    now = int(time.time())
    claims = {"sub": subject, "iat": now, "exp": now + int(expires_in_s)}
    return part({"alg": "none"}) + "." + part(claims) + "."


@contextmanager
def token_endpoint(
    client_id: str, client_secret: str, answer: Answer
) -> Iterator[dict[str, object]]:
    """Serve ``http://127.0.0.1:<port>/token``; yields ``{"url": ..., "requests": [...]}``."""
    state: dict[str, object] = {"requests": []}
    expected = "Basic " + base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            state["requests"].append(form)  # type: ignore[attr-defined]
            if self.headers.get("Authorization") != expected:
                status, body = 401, {"error": "invalid_client", "error_description": "bad secret"}
            elif form.get("grant_type") != "client_credentials":
                status, body = 400, {"error": "unsupported_grant_type"}
            else:
                status, body = answer(form)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = f"http://127.0.0.1:{server.server_address[1]}/token"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
