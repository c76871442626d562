"""``client_dns_lookup=resolve_canonical_bootstrap_servers_only`` (Java's ``ClientUtils``).

Each bootstrap name is replaced by the canonical name of every address it resolves to:
a name such as a load balancer's alias becomes the brokers' own host names, which is what
Kerberos needs (the service principal is ``kafka/<host>``, and the alias is not in any
keytab). The canonical name is the reverse lookup of the address, or the address itself
where there is none (Java's ``InetAddress.getCanonicalHostName``). A name that does not
resolve is left out with a warning, as in Java; if none resolves, the names are kept as
given, so that connecting to them fails with the resolver's reason and the lookup is
tried again at the next metadata request (Java refuses the configuration at once
instead: here a resolver's bad moment at start-up does not kill the producer).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence

import anyio

from asyncproducer._cluster import BrokerAddress

logger = logging.getLogger("asyncproducer.metadata")


async def canonical_bootstrap(
    addresses: Sequence[BrokerAddress],
) -> tuple[tuple[BrokerAddress, ...], bool]:
    """The canonical addresses, and whether any name resolved (else ``addresses``)."""
    canonical: list[BrokerAddress] = []
    for address in addresses:
        try:
            found = await anyio.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
        except OSError as exc:
            logger.warning(
                "bootstrap server %s left out: its name did not resolve (%s)", address, exc
            )
            continue
        for ip in dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in found):
            name = await _canonical_name(ip, address.port)
            resolved = BrokerAddress(name, address.port)
            if resolved not in canonical:
                canonical.append(resolved)
    if not canonical:
        return tuple(addresses), False
    logger.info(
        "bootstrap servers %s resolved to their canonical names %s",
        ", ".join(map(str, addresses)),
        ", ".join(map(str, canonical)),
    )
    return tuple(canonical), True


async def _canonical_name(ip: str, port: int) -> str:
    try:
        host, _ = await anyio.getnameinfo((ip, port), socket.NI_NAMEREQD)
    except OSError:  # no reverse entry: the address stands for itself, as in Java
        return ip
    return host
