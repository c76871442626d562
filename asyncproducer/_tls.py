"""TLS for broker connections: the client context built from the ``ssl_*`` settings, and
TLS failures told apart for the user.

The context is built once, when the producer is made, so a missing file or a wrong key
password is a :class:`ConfigError` at construction rather than a connection failure later.
Hostname checking is on unless ``ssl_endpoint_identification_algorithm=""`` (Java's
switch); turning it off logs one warning per producer.
"""

from __future__ import annotations

import logging
import os
import ssl
from typing import Any

from asyncproducer._config_security import TLS_PROTOCOLS
from asyncproducer.errors import ConfigError, SslAuthenticationError

logger = logging.getLogger("asyncproducer.security")


def client_tls_context(config: Any) -> ssl.SSLContext | None:
    """The TLS context for ``config`` (a ProducerConfig), or None without TLS."""
    if config.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    if config.ssl_context is not None:
        context: ssl.SSLContext = config.ssl_context
        return context
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies certificates and hostnames
    versions = [TLS_PROTOCOLS[name] for name in config.ssl_enabled_protocols]
    context.minimum_version = min(versions)
    context.maximum_version = max(versions)
    _load_trust(context, config)
    _load_identity(context, config)
    if config.ssl_cipher_suites:
        context.set_ciphers(":".join(config.ssl_cipher_suites))
    if config.ssl_endpoint_identification_algorithm == "":
        context.check_hostname = False
        logger.warning(
            "ssl_endpoint_identification_algorithm='' turns hostname verification off: any "
            "broker with a certificate from a trusted CA is accepted, whatever its name"
        )
    return context


def _load_trust(context: ssl.SSLContext, config: Any) -> None:
    location, certificates = config.ssl_truststore_location, config.ssl_truststore_certificates
    try:
        if location:
            context.load_verify_locations(cafile=location)
        elif certificates:
            context.load_verify_locations(cadata=certificates)
        else:
            context.load_default_certs()
    except (OSError, ssl.SSLError, ValueError) as exc:
        key = "ssl_truststore_location" if location else "ssl_truststore_certificates"
        where = f" ({location})" if location else ""
        raise ConfigError(f"{key}{where}: cannot read CA certificates: {_reason(exc)}") from None


def _load_identity(context: ssl.SSLContext, config: Any) -> None:
    """The client certificate and key (mutual TLS), from a file or from PEM text."""
    password = config.ssl_key_password
    if config.ssl_keystore_location:
        _load_chain(context, config.ssl_keystore_location, None, password, "ssl_keystore_location")
    elif config.ssl_keystore_certificate_chain:
        # ssl can load a chain and key from files only: a private temporary directory,
        # removed as soon as they are read. (tempfile, with shutil and its compressors,
        # is 2.5 ms of a cold start that only this needs.)
        import tempfile

        with tempfile.TemporaryDirectory(prefix="asyncproducer-tls-") as directory:
            chain = os.path.join(directory, "chain.pem")
            key = os.path.join(directory, "key.pem")
            for path, text in ((chain, config.ssl_keystore_certificate_chain),
                               (key, config.ssl_keystore_key)):  # fmt: skip
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "w", encoding="ascii") as handle:
                    handle.write(text)
            _load_chain(context, chain, key, password, "ssl_keystore_certificate_chain")


def _load_chain(
    context: ssl.SSLContext, chain: str, key: str | None, password: str | None, label: str
) -> None:
    try:
        context.load_cert_chain(chain, key, password=password)
    except (OSError, ssl.SSLError, ValueError) as exc:
        hint = (
            " (is ssl_key_password right, or needed?)"
            if "password" in str(exc).lower() or "bad decrypt" in str(exc).lower()
            else ""
        )
        where = f" ({chain})" if label == "ssl_keystore_location" else ""
        raise ConfigError(
            f"{label}{where}: cannot load the client certificate and key: {_reason(exc)}{hint}"
        ) from None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).replace("_", " ").lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def tls_failure(broker: object, exc: ssl.SSLError) -> SslAuthenticationError:
    """The typed error for a failed TLS handshake with ``broker``, saying why."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        why = exc.verify_message or "the broker's certificate was refused"
        return SslAuthenticationError(
            f"TLS with broker {broker} failed: {why} (check ssl_truststore_location / the "
            "broker's certificate and the address you connect to)"
        )
    reason = str(exc.reason or exc).replace("_", " ").lower()
    hint = ""
    if "wrong version number" in reason or "record layer failure" in reason:
        hint = " (does this port speak TLS? a PLAINTEXT listener answers this way)"
    elif "unsupported protocol" in reason or "no protocols available" in reason:
        hint = " (the broker and ssl_enabled_protocols share no TLS version)"
    elif "bad certificate" in reason or "certificate required" in reason:
        hint = (
            " (the broker requires a client certificate it trusts: set "
            "ssl_keystore_location, or ssl_keystore_certificate_chain and ssl_keystore_key)"
        )
    elif "handshake failure" in reason or "alert" in reason:
        hint = " (the broker may require a client certificate, or other cipher suites)"
    return SslAuthenticationError(f"TLS with broker {broker} failed: {reason}{hint}")
