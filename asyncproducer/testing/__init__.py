"""Test helpers for applications that use asyncproducer (and for asyncproducer's own tests).

* :class:`MockProducer` (``testing.mock``): the ``Producer`` API with no network.
* :class:`FakeCluster` (``testing.fake``): an in-process multi-broker cluster on loopback,
  with fault injection, and TLS and SASL listeners like ``KafkaCluster``'s.
* :class:`FaultProxy` (``testing.proxy``): a TCP proxy that breaks or rewrites a real
  broker's traffic on command.
* :class:`TansuBroker` (``testing.tansu``): a Kafka-compatible broker (Tansu) in a subprocess.
* :class:`KafkaCluster` (``testing.kafka``): Apache Kafka itself, 1 or 3 KRaft nodes, with
  a PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL client listener.
* :func:`make_tls_files` / :class:`TlsFiles` (``testing.certs``): a CA and certificates
  made at run time (valid, wrong name, expired, client, an unrelated CA), as PEM files.
* ``testing.kerberos.KerberosRealm``: a throwaway MIT Kerberos KDC, for GSSAPI.

docs/testing.md shows each. The names load lazily: the pytest plugin
(``testing.pytest_plugin``) is imported by every pytest run in a project that installs
asyncproducer, and must not pay for what a test does not use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asyncproducer.testing.certs import TlsFiles, make_tls_files
    from asyncproducer.testing.fake import FakeCluster
    from asyncproducer.testing.kafka import KafkaCluster
    from asyncproducer.testing.mock import MockProducer
    from asyncproducer.testing.proxy import FaultProxy
    from asyncproducer.testing.tansu import TansuBroker

_EXPORTS = {
    "FakeCluster": "asyncproducer.testing.fake",
    "FaultProxy": "asyncproducer.testing.proxy",
    "KafkaCluster": "asyncproducer.testing.kafka",
    "MockProducer": "asyncproducer.testing.mock",
    "TansuBroker": "asyncproducer.testing.tansu",
    "TlsFiles": "asyncproducer.testing.certs",
    "make_tls_files": "asyncproducer.testing.certs",
}


def __getattr__(name: str) -> Any:
    try:
        module_name = _EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module 'asyncproducer.testing' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


__all__ = [
    "FakeCluster",
    "FaultProxy",
    "KafkaCluster",
    "MockProducer",
    "TansuBroker",
    "TlsFiles",
    "make_tls_files",
]
