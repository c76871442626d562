"""A throwaway MIT Kerberos realm for tests: a KDC on a free loopback port, in a temp dir.

    with KerberosRealm() as realm:
        broker_keytab = realm.add_principal("kafka/localhost")
        client_keytab = realm.add_principal("alice")
        os.environ["KRB5_CONFIG"] = str(realm.krb5_conf)    # for this process's GSSAPI
        KafkaCluster(listener="SASL_PLAINTEXT", kerberos=realm, ...)

It needs MIT Kerberos' server tools (``apt-get install krb5-kdc krb5-admin-server``:
``kdb5_util``, ``kadmin.local``, ``krb5kdc``); a missing one raises
:class:`KerberosToolMissingError`. Nothing outside the temp dir is read or written: the
tools get ``KRB5_CONFIG`` and ``KRB5_KDC_PROFILE`` pointing into it, and ``close()`` (or
the end of the ``with``) stops the KDC and removes the directory.

The client configuration (:attr:`KerberosRealm.krb5_conf`) turns off DNS: no hostname
canonicalization or reverse lookups, so the service principal a client asks for is
``<service>/<the host it connects to>`` exactly, and it speaks TCP only (``udp_preference_limit
= 1``), which the KDC is sure to have bound. Java reads the same file
(``-Djava.security.krb5.conf``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from asyncproducer.testing._process import end_process

__all__ = ["DEFAULT_REALM", "KerberosRealm", "KerberosToolMissingError"]

DEFAULT_REALM = "ASYNCPRODUCER.TEST"
_HOST = "127.0.0.1"
_TOOLS = ("kdb5_util", "kadmin.local", "krb5kdc")
_SEARCH_PATH = ("/usr/sbin", "/usr/local/sbin", "/sbin")  # the KDC tools live in sbin
_INSTALL_HINT = "apt-get install krb5-kdc krb5-admin-server krb5-user"
_ENCTYPES = "aes256-cts-hmac-sha1-96 aes128-cts-hmac-sha1-96"
_TOOL_TIMEOUT_S = 60.0


class KerberosToolMissingError(RuntimeError):
    """An MIT Kerberos server tool is not installed; the message names the package."""


class KerberosError(RuntimeError):
    """The realm could not be made or the KDC did not start; the message says why."""


def find_kdc_tool(name: str) -> str:
    """The path of ``kdb5_util``, ``kadmin.local`` or ``krb5kdc`` (PATH, then sbin)."""
    search = os.pathsep.join([os.environ.get("PATH", ""), *_SEARCH_PATH])
    found = shutil.which(name, path=search)
    if found is None:
        raise KerberosToolMissingError(
            f"{name!r} was not found: a test Kerberos realm needs MIT Kerberos ({_INSTALL_HINT})"
        )
    return found


def _free_port() -> int:
    # A port free for TCP and UDP both: the KDC binds both.
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((_HOST, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((_HOST, port))
                except OSError:
                    continue
                return port


class KerberosRealm:
    """A KDC for ``realm`` with its database, config and keytabs in a temp dir; a context
    manager. :meth:`add_principal` makes principals (with a random key) and their keytabs.
    """

    def __init__(self, realm: str = DEFAULT_REALM) -> None:
        self.realm = realm
        self.directory: Path | None = None
        self.port: int = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._output: IO[bytes] | None = None

    def __repr__(self) -> str:
        state = f"{_HOST}:{self.port}" if self._process is not None else "stopped"
        return f"<KerberosRealm {self.realm} {state}>"

    @property
    def krb5_conf(self) -> Path:
        """The client configuration: point ``KRB5_CONFIG`` (or Java's
        ``-Djava.security.krb5.conf``) at it."""
        return self._path("krb5.conf")

    @property
    def env(self) -> dict[str, str]:
        """What MIT Kerberos' tools and libraries need to use this realm only."""
        return {
            "KRB5_CONFIG": str(self.krb5_conf),
            "KRB5_KDC_PROFILE": str(self._path("kdc.conf")),
        }

    def principal(self, name: str) -> str:
        """``name@REALM`` (``name`` as given if it already names a realm)."""
        return name if "@" in name else f"{name}@{self.realm}"

    def keytab(self, name: str) -> Path:
        """Where :meth:`add_principal` writes ``name``'s keytab."""
        return self._path(f"{name.split('@')[0].replace('/', '_')}.keytab")

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> KerberosRealm:
        """Create the database and start the KDC; return once it accepts connections."""
        if self._process is not None:
            raise KerberosError("the KerberosRealm is already started")
        tools = {name: find_kdc_tool(name) for name in _TOOLS}
        self.directory = Path(tempfile.mkdtemp(prefix="asyncproducer-krb5-"))
        _live_realms.add(self)
        try:
            self.port = _free_port()
            self._write_config()
            master = secrets.token_urlsafe(16)  # the database's key; nobody needs it again
            self._run(tools["kdb5_util"], "create", "-s", "-r", self.realm, "-P", master)
            self._output = self._path("krb5kdc.out").open("wb")
            self._process = subprocess.Popen(
                [tools["krb5kdc"], "-n", "-r", self.realm],
                env={**os.environ, **self.env},
                stdin=subprocess.DEVNULL,
                stdout=self._output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            self._wait_ready(time.monotonic() + 30.0)
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        """Stop the KDC and remove the directory (keytabs included); idempotent."""
        process, self._process = self._process, None
        if process is not None:
            end_process(process)
        output, self._output = self._output, None
        if output is not None:
            output.close()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None
        _live_realms.discard(self)

    def add_principal(self, name: str, *, keytab: bool = True) -> Path:
        """Make principal ``name`` (``service/host`` or ``user``) with a random key, and
        export it to a keytab (:meth:`keytab`), whose path is returned."""
        principal = self.principal(name)
        path = self.keytab(name)
        if keytab and path.exists():  # made before (a cluster started again)
            return path
        kadmin = find_kdc_tool("kadmin.local")
        self._run(kadmin, "-r", self.realm, "-q", f"addprinc -randkey {principal}")
        if keytab:
            self._run(kadmin, "-r", self.realm, "-q", f"ktadd -k {path} {principal}")
            path.chmod(0o600)
        return path

    def rotate_key(self, name: str) -> Path:
        """Give ``name`` a new random key and write a fresh keytab with it (a keytab
        copied before now holds a key the KDC no longer accepts)."""
        path = self.keytab(name)
        path.unlink(missing_ok=True)  # ktadd appends: the old key would stay in it
        principal = self.principal(name)
        self._run(
            find_kdc_tool("kadmin.local"), "-r", self.realm, "-q", f"ktadd -k {path} {principal}"
        )
        path.chmod(0o600)
        return path

    def kinit(self, name: str, ccache: Path) -> None:
        """Get ``name``'s ticket-granting ticket (from its keytab) into ``ccache``."""
        kinit = find_kdc_tool("kinit")
        env = {"KRB5CCNAME": f"FILE:{ccache}"}
        self._run(kinit, "-k", "-t", str(self.keytab(name)), self.principal(name), env=env)

    # ------------------------------------------------------------------ helpers

    def _path(self, name: str) -> Path:
        if self.directory is None:
            raise KerberosError("the KerberosRealm is not started")
        return self.directory / name

    def _write_config(self) -> None:
        realm, kdc = self.realm, f"{_HOST}:{self.port}"
        self.krb5_conf.write_text(
            f"""[libdefaults]
    default_realm = {realm}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
    udp_preference_limit = 1
    default_tkt_enctypes = {_ENCTYPES}
    default_tgs_enctypes = {_ENCTYPES}
    permitted_enctypes = {_ENCTYPES}
    ticket_lifetime = 1h
    forwardable = false

[realms]
    {realm} = {{
        kdc = {kdc}
        admin_server = {kdc}
    }}

[domain_realm]
    localhost = {realm}
    .localhost = {realm}
""",
            encoding="ascii",
        )
        directory = self._path("")
        self._path("kdc.conf").write_text(
            f"""[kdcdefaults]
    kdc_listen = {kdc}
    kdc_tcp_listen = {kdc}

[realms]
    {realm} = {{
        database_name = {directory / "principal"}
        key_stash_file = {directory / "stash"}
        acl_file = {directory / "kadm5.acl"}
        kdc_listen = {kdc}
        kdc_tcp_listen = {kdc}
        supported_enctypes = {" ".join(f"{e}:normal" for e in _ENCTYPES.split())}
        max_life = 1h
    }}

[logging]
    kdc = FILE:{directory / "kdc.log"}
    admin_server = FILE:{directory / "kadmin.log"}
    default = FILE:{directory / "krb5.log"}
""",
            encoding="ascii",
        )
        self._path("kadm5.acl").write_text("", encoding="ascii")

    def _run(self, *command: str, env: dict[str, str] | None = None) -> None:
        done = subprocess.run(
            command,
            env={**os.environ, **self.env, **(env or {})},
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_TOOL_TIMEOUT_S,
            check=False,
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).decode(errors="replace")[-2000:]
            raise KerberosError(
                f"{Path(command[0]).name} {command[1]} failed (exit {done.returncode}):\n{output}"
            )

    def _wait_ready(self, deadline: float) -> None:
        while True:
            process = self._process
            if process is None or process.poll() is not None:
                raise KerberosError(f"krb5kdc exited while starting:\n{self._log_tail()}")
            with contextlib.suppress(OSError), socket.create_connection((_HOST, self.port), 0.5):
                return
            if time.monotonic() > deadline:
                raise KerberosError(f"krb5kdc did not listen on {self.port}:\n{self._log_tail()}")
            time.sleep(0.05)

    def _log_tail(self) -> str:
        texts = []
        for name in ("krb5kdc.out", "kdc.log"):
            with contextlib.suppress(OSError, KerberosError):
                texts.append(self._path(name).read_text(errors="replace")[-2000:])
        return "\n".join(texts) or "(no log)"

    # ------------------------------------------------------------------ context manager

    def __enter__(self) -> KerberosRealm:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_live_realms: set[KerberosRealm] = set()


@atexit.register
def _close_live_realms() -> None:
    for realm in list(_live_realms):
        realm.close()
