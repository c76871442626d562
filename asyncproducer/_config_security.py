"""The security settings: which keys there are, how they are checked, and Java's JAAS line.

Kept apart from :mod:`asyncproducer.config` (which holds the fields) because the rules
are their own: TLS keys only mean something with ``SSL`` / ``SASL_SSL``, SASL keys only
with ``SASL_*``, and a key that would not act is refused rather than ignored (Java logs
"unused config" and carries on; a user who set a truststore on a plaintext producer has
been misled). Secrets never reach a message: see :func:`is_secret`.
"""

from __future__ import annotations

import dataclasses
import os
import re
import ssl
from collections.abc import Callable
from typing import Any, Final

from asyncproducer.errors import ConfigError

SECURITY_PROTOCOLS: Final = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI")
"""The mechanisms this version implements (GSSAPI with the gssapi extra)."""

TLS_PROTOCOLS: Final = {"TLSv1.2": ssl.TLSVersion.TLSv1_2, "TLSv1.3": ssl.TLSVersion.TLSv1_3}

SECRET_KEYS: Final = frozenset(
    {
        "ssl_keystore_key",
        "ssl_key_password",
        "sasl_password",
        "sasl_jaas_config",
        "sasl_oauth_token_provider",  # may carry a client secret in its repr
    }
)
_SECRET_MARKERS: Final = ("password", "secret")

# The security fields of ProducerConfig and their defaults (Java's, where Java has one).
TLS_KEYS: Final = (
    "ssl_context",
    "ssl_truststore_location",
    "ssl_truststore_certificates",
    "ssl_truststore_type",
    "ssl_keystore_location",
    "ssl_keystore_certificate_chain",
    "ssl_keystore_key",
    "ssl_keystore_type",
    "ssl_key_password",
    "ssl_endpoint_identification_algorithm",
    "ssl_enabled_protocols",
    "ssl_cipher_suites",
)
OIDC_KEYS: Final = (
    "sasl_oauthbearer_token_endpoint_url",
    "sasl_oauthbearer_client_id",
    "sasl_oauthbearer_client_secret",
    "sasl_oauthbearer_scope",
)
KERBEROS_KEYS: Final = (
    "sasl_kerberos_service_name",
    "sasl_kerberos_principal",
    "sasl_kerberos_keytab",
)
SASL_KEYS: Final = (
    "sasl_mechanism",
    "sasl_username",
    "sasl_password",
    "sasl_jaas_config",
    "sasl_oauth_token_provider",
    *OIDC_KEYS,
    *KERBEROS_KEYS,
)

_PEM_ONLY = (
    "only PEM stores are supported; convert a JKS or PKCS12 store with "
    "`keytool -importkeystore -srckeystore store.jks -destkeystore store.p12 "
    "-deststoretype PKCS12` and then `openssl pkcs12 -in store.p12 -out store.pem` "
    "(add -nodes to leave the key unencrypted, or keep it encrypted and give "
    "ssl_key_password)"
)


def is_secret(key: str) -> bool:
    """Whether ``key`` (either style) holds a credential, never to be shown."""
    snake = key.replace(".", "_").lower()
    return snake in SECRET_KEYS or any(marker in snake for marker in _SECRET_MARKERS)


def check_security(config: Any, given: frozenset[str], label: Callable[[str], str]) -> None:
    """Validate and normalize the security fields of ``config`` (a ProducerConfig, whose
    fields are set with ``object.__setattr__``: it is frozen)."""

    def put(key: str, value: object) -> None:
        object.__setattr__(config, key, value)

    protocol = _one_of(label("security_protocol"), config.security_protocol, SECURITY_PROTOCOLS)
    put("security_protocol", protocol)
    for key in TLS_KEYS + SASL_KEYS:
        if key not in (
            "ssl_context",
            "ssl_enabled_protocols",
            "ssl_cipher_suites",
            "sasl_oauth_token_provider",
        ):
            _check_optional_text(label(key), getattr(config, key))
    uses_tls = protocol in ("SSL", "SASL_SSL")
    uses_sasl = protocol.startswith("SASL_")
    # "Set" is given with a value other than the default (dataclasses.replace gives all).
    defaults = {f.name: f.default for f in dataclasses.fields(config)}
    set_keys = frozenset(k for k in given if getattr(config, k) != defaults.get(k))
    _refuse_unused(set_keys, TLS_KEYS, uses_tls, "SSL or SASL_SSL", protocol, label)
    _refuse_unused(set_keys, SASL_KEYS, uses_sasl, "SASL_PLAINTEXT or SASL_SSL", protocol, label)
    if uses_tls:
        _check_tls(config, set_keys, label, put)
    if uses_sasl:
        _check_sasl(config, set_keys, label, put)


# --------------------------------------------------------------------------- TLS


def _check_tls(
    config: Any, given: frozenset[str], label: Callable[[str], str], put: Callable[..., None]
) -> None:
    if config.ssl_context is not None:
        if not isinstance(config.ssl_context, ssl.SSLContext):
            raise ConfigError(
                f"{label('ssl_context')} must be an ssl.SSLContext "
                f"(got {type(config.ssl_context).__name__})"
            )
        others = sorted(k for k in given & set(TLS_KEYS) if k != "ssl_context")
        if others:
            raise ConfigError(
                f"{label('ssl_context')} is used as given, so "
                f"{', '.join(label(k) for k in others)} would not act; "
                "set them on the context instead, or drop ssl_context"
            )
    for key in ("ssl_truststore_type", "ssl_keystore_type"):
        if str(getattr(config, key)).upper() != "PEM":
            raise ConfigError(f"{label(key)}={getattr(config, key)!r}: {_PEM_ONLY}")
        put(key, "PEM")
    if config.ssl_truststore_location and config.ssl_truststore_certificates:
        raise ConfigError(
            f"give {label('ssl_truststore_location')} or "
            f"{label('ssl_truststore_certificates')}, not both"
        )
    chain, key = config.ssl_keystore_certificate_chain, config.ssl_keystore_key
    if config.ssl_keystore_location and (chain or key):
        raise ConfigError(
            f"give {label('ssl_keystore_location')} or {label('ssl_keystore_certificate_chain')}"
            f" + {label('ssl_keystore_key')}, not both"
        )
    if bool(chain) != bool(key):
        raise ConfigError(
            f"{label('ssl_keystore_certificate_chain')} and {label('ssl_keystore_key')} go "
            "together: the client certificate and its private key"
        )
    has_key = bool(config.ssl_keystore_location or key)
    if config.ssl_key_password is not None and not has_key:
        raise ConfigError(
            f"{label('ssl_key_password')} decrypts the keystore's key, but no keystore is set"
        )
    algorithm = config.ssl_endpoint_identification_algorithm
    if algorithm.lower() not in ("https", ""):
        raise ConfigError(
            f"{label('ssl_endpoint_identification_algorithm')}={algorithm!r}: must be "
            "'https' (check the broker's hostname, the default) or '' (do not)"
        )
    put("ssl_endpoint_identification_algorithm", algorithm.lower())
    put("ssl_enabled_protocols", _protocols(label("ssl_enabled_protocols"), config))
    put("ssl_cipher_suites", _cipher_suites(label("ssl_cipher_suites"), config))


def _protocols(label: str, config: Any) -> tuple[str, ...]:
    value = config.ssl_enabled_protocols
    items = _as_list(label, value)
    unknown = [p for p in items if p not in TLS_PROTOCOLS]
    if unknown or not items:
        allowed = " and ".join(TLS_PROTOCOLS)
        raise ConfigError(
            f"{label}={value!r}: list some of {allowed} (older versions are insecure and "
            "Kafka 4.x does not offer them)"
        )
    return tuple(items)


def _cipher_suites(label: str, config: Any) -> tuple[str, ...]:
    items = _as_list(label, config.ssl_cipher_suites)
    if items:
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            probe.set_ciphers(":".join(items))
        except ssl.SSLError:
            raise ConfigError(
                f"{label}={config.ssl_cipher_suites!r}: OpenSSL knows none of these (use "
                "OpenSSL's names, e.g. ECDHE-RSA-AES128-GCM-SHA256; TLS 1.3 suites are "
                "not configurable)"
            ) from None
    return tuple(items)


# --------------------------------------------------------------------------- SASL


def _check_sasl(
    config: Any, given: frozenset[str], label: Callable[[str], str], put: Callable[..., None]
) -> None:
    if config.sasl_jaas_config is not None:
        if given & {"sasl_username", "sasl_password"}:
            raise ConfigError(
                f"give {label('sasl_jaas_config')} or {label('sasl_username')} + "
                f"{label('sasl_password')}, not both"
            )
        module, options = parse_jaas_config(label("sasl_jaas_config"), config.sasl_jaas_config)
        if module == _KRB5_MODULE:
            given = _put_krb5_options(config, options, given, label, put)
        elif module == _OAUTH_MODULE:  # KIP-768's client credentials
            for option, key in _OAUTH_OPTIONS.items():
                if option in options and getattr(config, key) is None:
                    put(key, options[option])
            given = given - {"sasl_jaas_config"}  # it acted: it gave the client
        else:
            put("sasl_username", options["username"])
            put("sasl_password", options["password"])
    mechanism = config.sasl_mechanism
    if mechanism is None:
        raise ConfigError(
            f"{label('security_protocol')}={config.security_protocol!r} needs "
            f"{label('sasl_mechanism')}: one of {', '.join(SASL_MECHANISMS)} (Java defaults "
            "to GSSAPI; here it is named, not assumed)"
        )
    mechanism = _one_of(label("sasl_mechanism"), mechanism, SASL_MECHANISMS)
    put("sasl_mechanism", mechanism)
    if mechanism == "GSSAPI":
        _check_gssapi(config, given, label)
        return
    unused_kerberos = sorted(given & set(KERBEROS_KEYS))
    if unused_kerberos:
        raise ConfigError(
            f"{', '.join(label(k) for k in unused_kerberos)} would not act with "
            f"{label('sasl_mechanism')}={mechanism!r}: they are for GSSAPI"
        )
    provider = config.sasl_oauth_token_provider
    if mechanism == "OAUTHBEARER":
        if provider is None and config.sasl_oauthbearer_token_endpoint_url is not None:
            provider = _oidc_provider(config, label)
            put("sasl_oauth_token_provider", provider)
        elif given & set(OIDC_KEYS):
            raise ConfigError(
                f"{', '.join(label(k) for k in sorted(given & set(OIDC_KEYS)))} would not act: "
                f"give {label('sasl_oauthbearer_token_endpoint_url')} (and the client) or "
                f"{label('sasl_oauth_token_provider')}, not both or a part"
            )
        _check_token_provider(config, given, label, provider)
        return
    unused = sorted(given & {"sasl_oauth_token_provider", *OIDC_KEYS})
    if unused:
        raise ConfigError(
            f"{', '.join(label(k) for k in unused)} would not act with "
            f"{label('sasl_mechanism')}={mechanism!r}: they are for OAUTHBEARER"
        )
    for key in ("sasl_username", "sasl_password"):
        if not getattr(config, key):
            raise ConfigError(
                f"{label('sasl_mechanism')}={config.sasl_mechanism!r} needs {label(key)} "
                f"(or {label('sasl_jaas_config')})"
            )


def _put_krb5_options(
    config: Any,
    options: dict[str, str],
    given: frozenset[str],
    label: Callable[[str], str],
    put: Callable[..., None],
) -> frozenset[str]:
    """Java's Krb5LoginModule options as the sasl_kerberos_* keys; returns ``given`` with
    the keys the line gave (so that GSSAPI's checks see them, and others refuse them)."""
    jaas = label("sasl_jaas_config")
    unknown = sorted(set(options) - _KRB5_OPTIONS)
    if unknown:
        raise ConfigError(
            f"{jaas}: Krb5LoginModule option(s) {', '.join(unknown)} not supported; this "
            f"version reads {', '.join(sorted(_KRB5_OPTIONS))}"
        )
    flags = {name: options.get(name, "false").lower() for name in ("useKeyTab", "useTicketCache")}
    if flags["useKeyTab"] == "true":
        if "keyTab" not in options or "principal" not in options:
            raise ConfigError(f"{jaas}: useKeyTab=true needs keyTab and principal")
        keys = {"sasl_kerberos_keytab": options["keyTab"]}
    elif flags["useTicketCache"] == "true":
        keys = {}
    else:
        raise ConfigError(
            f"{jaas}: Krb5LoginModule needs useKeyTab=true (with keyTab and principal) or "
            "useTicketCache=true (the ticket cache of kinit, $KRB5CCNAME); it cannot prompt"
        )
    if "principal" in options:
        keys["sasl_kerberos_principal"] = options["principal"]
    if "serviceName" in options:
        keys["sasl_kerberos_service_name"] = options["serviceName"]
    for key, value in keys.items():
        if key in given and getattr(config, key) != value:
            # Java refuses a serviceName that differs from sasl.kerberos.service.name too.
            raise ConfigError(f"{label(key)} and {jaas} disagree: give it once")
        put(key, value)
    return (given - {"sasl_jaas_config"}) | set(keys)


def _check_gssapi(config: Any, given: frozenset[str], label: Callable[[str], str]) -> None:
    """GSSAPI logs in with Kerberos: a principal and keytab, or the ticket cache."""
    unused = sorted(
        given
        & {
            "sasl_username",
            "sasl_password",
            "sasl_jaas_config",
            "sasl_oauth_token_provider",
            *OIDC_KEYS,
        }
    )
    if unused:
        raise ConfigError(
            f"{', '.join(label(k) for k in unused)} would not act with "
            f"{label('sasl_mechanism')}='GSSAPI': it logs in with Kerberos "
            f"({label('sasl_kerberos_principal')} + {label('sasl_kerberos_keytab')}, a "
            f"Krb5LoginModule line in {label('sasl_jaas_config')}, or the ticket cache)"
        )
    service = config.sasl_kerberos_service_name
    if not service or any(c in service for c in "@/ "):
        raise ConfigError(
            f"{label('sasl_kerberos_service_name')}={service!r}: the broker principal's "
            "first part, such as 'kafka' (for kafka/<broker host>@REALM)"
        )
    keytab = config.sasl_kerberos_keytab
    if keytab is not None:
        if not config.sasl_kerberos_principal:
            raise ConfigError(
                f"{label('sasl_kerberos_keytab')} needs {label('sasl_kerberos_principal')}: "
                "the principal to log in as"
            )
        if not os.path.isfile(keytab):
            raise ConfigError(f"{label('sasl_kerberos_keytab')}={keytab!r}: no such file")


def _oidc_provider(config: Any, label: Callable[[str], str]) -> object:
    """KIP-768's client-credentials provider from the ``sasl_oauthbearer_*`` keys."""
    from asyncproducer.oauth import OidcClientCredentials

    for key in ("sasl_oauthbearer_client_id", "sasl_oauthbearer_client_secret"):
        if not getattr(config, key):
            raise ConfigError(
                f"{label('sasl_oauthbearer_token_endpoint_url')} needs {label(key)} too"
            )
    return OidcClientCredentials(
        config.sasl_oauthbearer_token_endpoint_url,
        config.sasl_oauthbearer_client_id,
        config.sasl_oauthbearer_client_secret,
        scope=config.sasl_oauthbearer_scope,
    )


def _check_token_provider(
    config: Any, given: frozenset[str], label: Callable[[str], str], provider: object
) -> None:
    """OAUTHBEARER takes its tokens from a provider: a callable, or an object with a
    ``token()`` method, sync or async (see asyncproducer._sasl.TokenSource)."""
    if provider is None:
        raise ConfigError(
            f"{label('sasl_mechanism')}='OAUTHBEARER' needs {label('sasl_oauth_token_provider')}: "
            "a callable (or an object with a token() method), sync or async, returning an "
            "OAuthBearerToken or a (token, expires_at_ms) pair"
        )
    if not callable(provider) and not callable(getattr(provider, "token", None)):
        raise ConfigError(
            f"{label('sasl_oauth_token_provider')} must be a callable or an object with a "
            f"token() method (got {type(provider).__name__})"
        )
    unused = sorted(given & {"sasl_username", "sasl_password", "sasl_jaas_config"})
    if unused:
        raise ConfigError(
            f"{', '.join(label(k) for k in unused)} would not act with OAUTHBEARER: its "
            f"credential is the token from {label('sasl_oauth_token_provider')}"
        )


# Java's JAAS line: `<LoginModule class> required key="value" key2="value2";`
_JAAS = re.compile(
    r"^\s*([\w.$]+)\s+(required|requisite|sufficient|optional)\s*(.*?)\s*;\s*$", re.S
)
_JAAS_OPTION = re.compile(r'\s*([\w.-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|(\S+?))(?=\s|$)', re.S)
_OAUTH_MODULE: Final = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
_KRB5_MODULE: Final = "com.sun.security.auth.module.Krb5LoginModule"
# Read: useKeyTab, keyTab, principal, useTicketCache, serviceName. Accepted and moot here:
# storeKey (a server's need) and doNotPrompt (this client never prompts).
_KRB5_OPTIONS: Final = frozenset(
    {"useKeyTab", "keyTab", "principal", "useTicketCache", "serviceName", "storeKey", "doNotPrompt"}
)
_OAUTH_OPTIONS: Final = {
    "clientId": "sasl_oauthbearer_client_id",
    "clientSecret": "sasl_oauthbearer_client_secret",
    "scope": "sasl_oauthbearer_scope",
}
_LOGIN_MODULES: Final = {
    "org.apache.kafka.common.security.plain.PlainLoginModule",
    "org.apache.kafka.common.security.scram.ScramLoginModule",
    _OAUTH_MODULE,
    _KRB5_MODULE,
}


_MSK_IAM_MODULE: Final = "software.amazon.msk.auth.iam.IAMLoginModule"


def parse_jaas_config(label: str, text: str) -> tuple[str, dict[str, str]]:
    """``(login module, options)`` from a ``sasl.jaas.config`` line of the Plain, Scram
    or OAuthBearer login module (the first two need a username and a password). Errors
    never quote the line (it holds a secret)."""
    matched = _JAAS.match(text)
    if matched is None:
        raise ConfigError(
            f'{label} is not a JAAS line (`<LoginModule> required username="..." '
            'password="...";`, ending with a semicolon)'
        )
    module, _, rest = matched.groups()
    if module == _MSK_IAM_MODULE:
        raise ConfigError(
            f"{label} names AWS's {module}: for MSK IAM, use sasl_mechanism='OAUTHBEARER' with "
            "sasl_oauth_token_provider=asyncproducer.aws.MskIamTokenProvider(region)"
        )
    if module not in _LOGIN_MODULES:
        shown = module if "." in module else "(unreadable)"
        raise ConfigError(
            f"{label} names {shown}; this version reads the Plain, Scram, OAuthBearer and "
            "Krb5 login modules (org.apache.kafka.common.security.plain.PlainLoginModule, "
            "...scram.ScramLoginModule, ...oauthbearer.OAuthBearerLoginModule, "
            "com.sun.security.auth.module.Krb5LoginModule)"
        )
    options: dict[str, str] = {}
    position = 0
    while position < len(rest):
        option = _JAAS_OPTION.match(rest, position)
        if option is None:
            raise ConfigError(f"{label}: cannot read the options after {module}")
        name, quoted, bare = option.groups()
        options[name] = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        position = option.end()
    needed = () if module in (_OAUTH_MODULE, _KRB5_MODULE) else ("username", "password")
    missing = [name for name in needed if name not in options]
    if missing:
        raise ConfigError(f"{label}: {module} needs {' and '.join(missing)}")
    return module, options


# --------------------------------------------------------------------------- helpers


def _refuse_unused(
    given: frozenset[str],
    keys: tuple[str, ...],
    used: bool,
    needs: str,
    protocol: str,
    label: Callable[[str], str],
) -> None:
    unused = sorted(k for k in given & set(keys) if not used)
    if unused:
        names = ", ".join(label(k) for k in unused)
        raise ConfigError(
            f"{names} would not act with {label('security_protocol')}={protocol!r}: they "
            f"need {needs}; set {label('security_protocol')}, or remove them"
        )


def _one_of(label: str, value: object, allowed: tuple[str, ...]) -> str:
    if isinstance(value, str) and value.strip().upper() in allowed:
        return value.strip().upper()
    raise ConfigError(f"{label}={value!r}: must be one of {', '.join(allowed)}")


def _check_optional_text(label: str, value: object) -> None:
    if value is not None and not isinstance(value, str):
        shown = "'***'" if is_secret(label) else repr(value)
        raise ConfigError(f"{label}={shown}: must be a str (got {type(value).__name__})")


def _as_list(label: str, value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return [v.strip() for v in value if v.strip()]
    raise ConfigError(f"{label}={value!r}: must be a list of str (or a comma-separated str)")
