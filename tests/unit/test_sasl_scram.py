from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterator

import anyio.lowlevel
import anyio.to_thread
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncproducer.errors import ConfigError
from asyncproducer.protocol.sasl import (
    NeedsDerivation,
    SaslError,
    ScramClient,
    clear_derivation_cache,
    derive_salted_password,
)

# RFC 7677 section 3, SCRAM-SHA-256.
RFC_NONCE = "rOprNGfwEbeRWgbNEkqO"
RFC_CLIENT_FIRST = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_FIRST = (
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
)
RFC_CLIENT_FINAL = (
    b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    b"p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
)
RFC_SERVER_FINAL = b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
RFC_SALTED = hashlib.pbkdf2_hmac(
    "sha256", b"pencil", base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ=="), 4096
)
SECRETS = [
    "pencil",
    "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",  # the proof
    "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",  # the server signature
    base64.b64encode(RFC_SALTED).decode(),
    RFC_SALTED.hex(),
    repr(RFC_SALTED)[2:-1],
]


@pytest.fixture(autouse=True)
def _fresh_cache() -> Iterator[None]:
    clear_derivation_cache()
    yield
    clear_derivation_cache()


def assert_secret_free(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


class ScramServer:
    """The server side, written out from RFC 5802 section 3, independently of the client."""

    def __init__(
        self, hash_name: str, password: str, salt: bytes, iterations: int, nonce_tail: str
    ) -> None:
        self.hash_name = hash_name
        self.salted = hashlib.pbkdf2_hmac(hash_name, password.encode(), salt, iterations)
        self.salt = salt
        self.iterations = iterations
        self.nonce_tail = nonce_tail

    def first(self, client_first: bytes) -> bytes:
        text = client_first.decode()
        assert text.startswith("n,,")
        self.client_first_bare = text[3:]
        attributes = dict(part.split("=", 1) for part in self.client_first_bare.split(","))
        self.nonce = attributes["r"] + self.nonce_tail
        salt = base64.b64encode(self.salt).decode()
        self.server_first = f"r={self.nonce},s={salt},i={self.iterations}"
        return self.server_first.encode()

    def final(self, client_final: bytes) -> bytes:
        without_proof, proof = client_final.decode().rsplit(",p=", 1)
        assert without_proof == f"c=biws,r={self.nonce}"
        auth_message = f"{self.client_first_bare},{self.server_first},{without_proof}".encode()
        h = self.hash_name
        stored_key = hashlib.new(h, hmac.new(self.salted, b"Client Key", h).digest()).digest()
        client_signature = hmac.new(stored_key, auth_message, h).digest()
        client_key = bytes(
            a ^ b for a, b in zip(base64.b64decode(proof), client_signature, strict=True)
        )
        if hashlib.new(h, client_key).digest() != stored_key:
            return b"e=invalid-proof"
        server_key = hmac.new(self.salted, b"Server Key", h).digest()
        return b"v=" + base64.b64encode(hmac.new(server_key, auth_message, h).digest())


def rfc_client(min_iterations: int = 4096, max_iterations: int = 1_000_000) -> ScramClient:
    return ScramClient(
        "SCRAM-SHA-256",
        "user",
        "pencil",
        min_iterations=min_iterations,
        max_iterations=max_iterations,
        _client_nonce=RFC_NONCE,
    )


def at_server_final() -> ScramClient:
    client = rfc_client()
    client.initial_response()
    request = client.evaluate(RFC_SERVER_FIRST)
    assert isinstance(request, NeedsDerivation)
    client.provide(request.compute())
    return client


def test_rfc7677_vector_byte_for_byte() -> None:
    client = rfc_client()
    assert client.name == "SCRAM-SHA-256"
    assert client.initial_response() == RFC_CLIENT_FIRST
    request = client.evaluate(RFC_SERVER_FIRST)
    assert isinstance(request, NeedsDerivation)
    assert (request.hash_name, request.iterations) == ("sha256", 4096)
    assert request.salt == base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    assert not client.complete
    assert client.provide(request.compute()) == RFC_CLIENT_FINAL
    assert not client.complete
    assert client.evaluate(RFC_SERVER_FINAL) is None
    assert client.complete


def test_sha512_matches_an_independent_computation() -> None:
    nonce, tail, salt = "fyko+d2lbbFgONRv9qkxdawL", "3rfcNHYJY1ZVvWVs7j", b"0123456789abcdef"
    client = ScramClient("SCRAM-SHA-512", "bob", "correct horse", _client_nonce=nonce)
    server = ScramServer("sha512", "correct horse", salt, 4096, tail)
    assert client.initial_response() == f"n,,n=bob,r={nonce}".encode()
    request = client.evaluate(server.first(b"n,,n=bob,r=" + nonce.encode()))
    assert isinstance(request, NeedsDerivation)
    assert request.hash_name == "sha512"
    salted = request.compute()
    assert len(salted) == 64
    # RFC 5802 section 3, written out for SHA-512:
    expected_salted = hashlib.pbkdf2_hmac("sha512", b"correct horse", salt, 4096)
    assert salted == expected_salted
    without_proof = f"c=biws,r={nonce}{tail}"
    auth = f"n=bob,r={nonce},r={nonce}{tail},s={base64.b64encode(salt).decode()},i=4096,"
    auth_message = (auth + without_proof).encode()
    client_key = hmac.new(expected_salted, b"Client Key", "sha512").digest()
    stored_key = hashlib.sha512(client_key).digest()
    client_signature = hmac.new(stored_key, auth_message, "sha512").digest()
    proof = bytes(a ^ b for a, b in zip(client_key, client_signature, strict=True))
    client_final = client.provide(salted)
    assert client_final == f"{without_proof},p={base64.b64encode(proof).decode()}".encode()
    server_key = hmac.new(expected_salted, b"Server Key", "sha512").digest()
    server_signature = hmac.new(server_key, auth_message, "sha512").digest()
    server_final = server.final(client_final)
    assert server_final == b"v=" + base64.b64encode(server_signature)
    assert client.evaluate(server_final) is None
    assert client.complete


@settings(max_examples=30, deadline=None)
@given(
    mechanism=st.sampled_from(["SCRAM-SHA-256", "SCRAM-SHA-512"]),
    # Any text UTF-8 can carry: no NUL (refused), no lone surrogate (refused, below).
    username=st.text(
        st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)),
        min_size=1,
        max_size=20,
    ),
    password=st.text(
        st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)),
        min_size=1,
        max_size=20,
    ),
    salt=st.binary(min_size=1, max_size=32),
)
def test_an_independent_server_accepts_any_credential(
    mechanism: str, username: str, password: str, salt: bytes
) -> None:
    hash_name = "sha256" if mechanism == "SCRAM-SHA-256" else "sha512"
    server = ScramServer(hash_name, password, salt, 1, "tail")
    client = ScramClient(mechanism, username, password, min_iterations=1)
    request = client.evaluate(server.first(client.initial_response()))
    assert isinstance(request, NeedsDerivation)
    assert client.evaluate(server.final(client.provide(request.compute()))) is None
    assert client.complete


def test_username_escaping() -> None:
    client = ScramClient("SCRAM-SHA-256", "a=b,c", "pw", _client_nonce="nonce")
    assert client.initial_response() == b"n,,n=a=3Db=2Cc,r=nonce"


def test_random_nonce_is_long_and_without_commas() -> None:
    nonces = set()
    for _ in range(20):
        first = ScramClient("SCRAM-SHA-256", "u", "pw").initial_response().decode()
        nonce = first.split(",r=", 1)[1]
        assert len(nonce) >= 32  # 24 random bytes, base64url
        assert "," not in nonce
        nonces.add(nonce)
    assert len(nonces) == 20


def test_extensions_follow_the_nonce() -> None:
    client = ScramClient(
        "SCRAM-SHA-512", "u", "pw", extensions={"tokenauth": "true"}, _client_nonce="n0"
    )
    assert client.initial_response() == b"n,,n=u,r=n0,tokenauth=true"


@pytest.mark.parametrize(
    ("extensions", "match"),
    [
        ({"r": "x"}, "extension name 'r'"),
        ({"token auth": "true"}, "extension name"),
        ({"tokenauth": "a,b"}, "value of extension 'tokenauth'"),
        ({"tokenauth": ""}, "value of extension"),
    ],
)
def test_refuses_bad_extensions(extensions: dict[str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as caught:
        ScramClient("SCRAM-SHA-256", "u", "pw", extensions=extensions)
    assert "a,b" not in str(caught.value)


@pytest.mark.parametrize(
    ("arguments", "match"),
    [
        (("SCRAM-SHA-1", "u", "pencil"), "unknown SCRAM mechanism 'SCRAM-SHA-1'"),
        (("SCRAM-SHA-256", "", "pencil"), "username is empty"),
        (("SCRAM-SHA-256", "u\0", "pencil"), "username contains a NUL"),
        (("SCRAM-SHA-256", "u", "pen\0cil"), "password contains a NUL"),
        (("SCRAM-SHA-256", "u", ""), "password is empty"),
    ],
)
def test_refuses_bad_construction(arguments: tuple[str, str, str], match: str) -> None:
    with pytest.raises(ConfigError, match=match) as caught:
        ScramClient(*arguments)
    assert "pen" not in str(caught.value)


def test_refuses_bad_iteration_bounds() -> None:
    with pytest.raises(ConfigError, match="min_iterations <= max_iterations"):
        ScramClient("SCRAM-SHA-256", "u", "pw", min_iterations=8192, max_iterations=4096)


SERVER_FIRST_REJECTIONS = [
    (b"r=someoneElse%hvYDpWUa2RaTCAfuxFIlj,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "does not extend"),
    (b"r=rOprNGfwEbeRWgbNEkqO,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "does not extend"),
    (b"r=rOprNGfwEbeRWgbNEkqO%hv,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4095", "4095 iterations, below"),
    (b"r=rOprNGfwEbeRWgbNEkqO%hv,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1000001", "above the maximum"),
    (b"r=rOprNGfwEbeRWgbNEkqO%hv,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=0", "not a positive integer"),
    (b"r=rOprNGfwEbeRWgbNEkqO%hv,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=-1", "not a positive integer"),
    (b"r=rOprNGfwEbeRWgbNEkqO%hv,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=lots", "not a positive integer"),
    (b"r=rOprNGfwEbeRWgbNEkqO%hv,s=W22ZaJ0SNY7soEsUEjb6gQ==", "must start with r=, s=, i="),
    (b"r=rOprNGfwEbeRWgbNEkqO%hv,i=4096", "must start with r=, s=, i="),
    (b"s=W22ZaJ0SNY7soEsUEjb6gQ==,r=rOprNGfwEbeRWgbNEkqO%hv,i=4096", "must start with r="),
    (b"r=rOprNGfwEbeRWgbNEkqO%hv,s=W22ZaJ0SNY7soEsUEjb6gQ=,i=4096", r"salt \(s=\) is not valid"),
    (b"r=rOprNGfwEbeRWgbNEkqO%hv,s=W22Z*J0SNY7soEsUEjb6gQ==,i=4096", "not valid base64"),
    (b"r=rOprNGfwEbeRWgbNEkqO%hv,s=,i=4096", r"salt \(s=\) is empty"),
    (b"r=rOprNGfwEbeRWgbNEkqO%h v,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "not printable"),
    (b"m=channel,r=rOprNGfwEbeRWgbNEkqO%hv,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "mandatory"),
    (b"e=unknown-user", "refused authentication: 'unknown-user'"),
    (b"r=rOprNGfwEbeRWgbNEkqO%hv,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,junk", "not of the form"),
    (b"", "not of the form"),
    (b"r=rOprNGfwEbeRWgbNEkqO\xff,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", "not UTF-8"),
]


@pytest.mark.parametrize(("server_first", "match"), SERVER_FIRST_REJECTIONS)
def test_rejects_bad_server_first(server_first: bytes, match: str) -> None:
    client = rfc_client()
    client.initial_response()
    with pytest.raises(SaslError, match=match) as caught:
        client.evaluate(server_first)
    assert str(caught.value).startswith("SASL SCRAM-SHA-256: ")
    assert_secret_free(str(caught.value))
    assert not client.complete
    with pytest.raises(SaslError, match=r"out of turn \(state: failed\)"):
        client.evaluate(RFC_SERVER_FIRST)


def test_server_first_extensions_after_the_count_are_ignored() -> None:
    client = rfc_client()
    client.initial_response()
    assert isinstance(client.evaluate(RFC_SERVER_FIRST + b",x=future"), NeedsDerivation)


def test_iteration_bounds_are_configurable() -> None:
    strict = rfc_client(min_iterations=8192)
    strict.initial_response()
    with pytest.raises(SaslError, match="below the minimum of 8192"):
        strict.evaluate(RFC_SERVER_FIRST)
    capped = rfc_client(max_iterations=4095, min_iterations=1)
    capped.initial_response()
    with pytest.raises(SaslError, match="above the maximum of 4095"):
        capped.evaluate(RFC_SERVER_FIRST)


FORGED = base64.b64encode(bytes(32)).decode()
SERVER_FINAL_REJECTIONS = [
    (b"v=7rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", "signature does not match"),
    (b"v=" + FORGED.encode(), "signature does not match"),
    (b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nL", "not valid base64"),
    (b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJR", "signature does not match"),
    (b"v=", "signature does not match"),
    (b"e=invalid-proof", "refused authentication: 'invalid-proof'"),
    (b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=,e=other-error", "'other-error'"),
    (b"x=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", "must start with v= or e="),
    (b"", "not of the form"),
    (b"\xff", "not UTF-8"),
    (b"e=\x1b[31mred", r"refused authentication: '\?\[31mred'"),
]


@pytest.mark.parametrize(("server_final", "match"), SERVER_FINAL_REJECTIONS)
def test_rejects_bad_server_final(server_final: bytes, match: str) -> None:
    client = at_server_final()
    with pytest.raises(SaslError, match=match) as caught:
        client.evaluate(server_final)
    assert_secret_free(str(caught.value))
    assert_secret_free(repr(client))
    assert not client.complete
    with pytest.raises(SaslError, match=r"out of turn \(state: failed\)"):
        client.evaluate(RFC_SERVER_FINAL)


def test_calls_out_of_turn() -> None:
    client = rfc_client()
    with pytest.raises(SaslError, match=r"evaluate\(\) called out of turn \(state: initial\)"):
        client.evaluate(RFC_SERVER_FIRST)
    with pytest.raises(SaslError, match=r"provide\(\) called out of turn"):
        client.provide(RFC_SALTED)
    client.initial_response()
    with pytest.raises(SaslError, match=r"initial_response\(\) called out of turn"):
        client.initial_response()
    request = client.evaluate(RFC_SERVER_FIRST)
    assert isinstance(request, NeedsDerivation)
    with pytest.raises(SaslError, match="awaiting the key derivation"):
        client.evaluate(RFC_SERVER_FINAL)
    with pytest.raises(SaslError, match=r"takes NeedsDerivation.compute\(\)'s result \(32 bytes\)"):
        client.provide(RFC_SALTED[:16])
    client.provide(request.compute())  # misuse did not break the exchange
    assert client.evaluate(RFC_SERVER_FINAL) is None
    with pytest.raises(SaslError, match=r"out of turn \(state: complete\)"):
        client.evaluate(RFC_SERVER_FINAL)
    assert client.complete


def test_reprs_hide_secrets() -> None:
    client = rfc_client()
    texts = [repr(client)]
    client.initial_response()
    request = client.evaluate(RFC_SERVER_FIRST)
    assert isinstance(request, NeedsDerivation)
    texts += [repr(client), repr(request), str(request)]
    client.provide(request.compute())
    texts.append(repr(client))
    client.evaluate(RFC_SERVER_FINAL)
    texts.append(repr(client))
    for text in texts:
        assert_secret_free(text)
    assert "username='user'" in texts[0]


def test_derive_salted_password_is_pbkdf2() -> None:
    salt = b"salt"
    for hash_name in ("sha256", "sha512"):
        assert derive_salted_password("pencil", salt, 4096, hash_name) == hashlib.pbkdf2_hmac(
            hash_name, b"pencil", salt, 4096
        )
    assert derive_salted_password(b"pencil", salt, 1, "sha256") == derive_salted_password(
        "pencil", salt, 1, "sha256"
    )
    with pytest.raises(ValueError, match="unsupported SCRAM hash 'sha1'"):
        derive_salted_password("pencil", salt, 1, "sha1")
    with pytest.raises(ValueError, match="must be positive"):
        derive_salted_password("pencil", salt, 0, "sha256")


def test_derivations_are_cached_for_reauthentication() -> None:
    first = NeedsDerivation("sha256", b"salt", 4096, b"pencil")
    assert first.cached() is None
    salted = first.compute()
    again = NeedsDerivation("sha256", b"salt", 4096, b"pencil")
    assert again.cached() == salted
    assert NeedsDerivation("sha256", b"salt", 4096, b"pen").cached() is None
    assert NeedsDerivation("sha512", b"salt", 4096, b"pencil").cached() is None
    assert NeedsDerivation("sha256", b"salt", 4097, b"pencil").cached() is None
    clear_derivation_cache()
    assert again.cached() is None


def test_the_cache_is_a_small_lru() -> None:
    requests = [NeedsDerivation("sha256", b"salt", 1, str(n).encode()) for n in range(17)]
    for request in requests[:16]:
        request.compute()
    requests[0].compute()  # most recently used now; requests[1] is the oldest
    requests[16].compute()
    assert requests[0].cached() is not None
    assert requests[1].cached() is None
    assert requests[16].cached() is not None


def test_a_second_exchange_reuses_the_derived_key() -> None:
    at_server_final()
    client = rfc_client()
    client.initial_response()
    request = client.evaluate(RFC_SERVER_FIRST)
    assert isinstance(request, NeedsDerivation)
    assert request.cached() == RFC_SALTED


@pytest.mark.anyio
async def test_driven_from_async_code_with_the_derivation_in_a_worker_thread() -> None:
    server = ScramServer("sha512", "pencil", b"NaCl", 4096, "serverpart")
    replies = {"first": server.first, "final": server.final}
    client = ScramClient("SCRAM-SHA-512", "user", "pencil")

    async def exchange(step: str, message: bytes) -> bytes:
        await anyio.lowlevel.checkpoint()
        return replies[step](message)

    request = client.evaluate(await exchange("first", client.initial_response()))
    assert isinstance(request, NeedsDerivation)
    salted = request.cached()
    if salted is None:
        salted = await anyio.to_thread.run_sync(request.compute)
    assert client.evaluate(await exchange("final", client.provide(salted))) is None
    assert client.complete


@pytest.mark.parametrize("field", ["username", "password"])
def test_a_lone_surrogate_in_a_credential_is_a_config_error(field: str) -> None:
    credentials = {"username": "alice", "password": "pencil", field: "a\ud800b"}
    with pytest.raises(ConfigError, match=f"the {field} is not valid Unicode") as raised:
        ScramClient("SCRAM-SHA-256", credentials["username"], credentials["password"])
    assert "\ud800" not in str(raised.value)
