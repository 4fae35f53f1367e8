"""Debian's OpenLDAP server (slapd) and Cyrus saslauthd as real directory peers.

`Slapd` starts `/usr/sbin/slapd` on 127.0.0.1 with a throw-away `slapd.conf` directory
(mdb backend, suffix dc=example,dc=org, rootdn cn=admin,dc=example,dc=org / adminpw),
an `ldap://` listener (StartTLS offered) and an `ldaps://` one, both with a certificate
for `localhost` from a test CA, and loads the users in `USERS` with `ldapadd`. The
system's own slapd (which the Debian package would start) is never used.

`Saslauthd` starts Debian's `saslauthd -a ldap` (sasl2-bin) against such a slapd, with
its socket (`mux`) in a test directory.

`unavailable()` says why the tests cannot run here (packages missing), or None.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .certs import TestPki, make_pki
from .servers import free_port, make_workdir, tail

SLAPD = Path("/usr/sbin/slapd")
LDAPADD = shutil.which("ldapadd") or "/usr/bin/ldapadd"
SASLAUTHD = Path("/usr/sbin/saslauthd")
SCHEMA = Path("/etc/ldap/schema")

SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PW = "adminpw"
PEOPLE = f"ou=people,{SUFFIX}"


@dataclass(frozen=True)
class LdapUser:
    uid: str
    cn: str
    password: str

    @property
    def dn(self) -> str:
        return f"uid={self.uid},{PEOPLE}"


USERS = (
    LdapUser("alice", "Alice Liddell", "alice-pw"),
    LdapUser("bob", "Bob Builder", "bob-pw"),
    LdapUser("jurgen", "Jürgen Groß", "päss wörd"),
)


def unavailable() -> str | None:
    """None when slapd and ldapadd are installed, else the reason to skip."""
    missing = [str(p) for p in (SLAPD, Path(LDAPADD)) if not Path(p).exists()]
    if missing:
        return (
            f"skipping: OpenLDAP not installed ({', '.join(missing)} missing; "
            "scripts/test.sh installs slapd ldap-utils sasl2-bin as root)"
        )
    return None


def saslauthd_unavailable() -> str | None:
    if not SASLAUTHD.exists():
        return f"skipping: {SASLAUTHD} not installed (Debian package sasl2-bin)"
    return None


def _wait_port(port: int, proc: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}\n{tail(log)}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port}\n{tail(log)}")


def ldif(users: tuple[LdapUser, ...]) -> str:
    entries = [
        f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n",
        f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
    ]
    for u in users:
        entries.append(
            f"dn: {u.dn}\nobjectClass: inetOrgPerson\nuid: {u.uid}\ncn: {u.cn}\n"
            f"sn: {u.cn.split()[-1]}\nuserPassword: {u.password}\n"
        )
    return "\n".join(entries)


class Slapd:
    """One slapd; `start()` then `stop()` (or use it as a context manager)."""

    def __init__(self, port: int | None = None, users: tuple[LdapUser, ...] = USERS) -> None:
        self.directory = make_workdir("lilt-slapd-")
        self.port = port or free_port()
        self.ldaps_port = free_port()
        self.users = users
        self.proc: subprocess.Popen | None = None
        self.log = self.directory / "slapd.log"
        self.pki: TestPki = make_pki(self.directory / "pki", ("localhost",))

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        # The certificate names localhost (verified by the client).
        return f"ldaps://localhost:{self.ldaps_port}"

    @property
    def ca_file(self) -> Path:
        return self.pki.ca_file

    def _write_config(self) -> Path:
        db = self.directory / "db"
        db.mkdir()
        conf = self.directory / "slapd.conf"
        schemas = "".join(
            f"include {SCHEMA / name}.schema\n"
            for name in ("core", "cosine", "inetorgperson", "nis")
        )
        conf.write_text(
            schemas
            + f"""
pidfile {self.directory / 'slapd.pid'}
argsfile {self.directory / 'slapd.args'}
modulepath /usr/lib/ldap
moduleload back_mdb
TLSCACertificateFile {self.pki.ca_file}
TLSCertificateFile {self.pki.cert_file}
TLSCertificateKeyFile {self.pki.key_file}

database mdb
maxsize 10485760
suffix "{SUFFIX}"
rootdn "{ROOT_DN}"
rootpw {ROOT_PW}
directory {db}
access to attrs=userPassword by self write by anonymous auth by * none
access to * by * read
"""
        )
        return conf

    def start(self) -> "Slapd":
        conf = self._write_config()
        urls = f"{self.url}/ ldaps://127.0.0.1:{self.ldaps_port}/"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(SLAPD), "-f", str(conf), "-h", urls, "-d", "0"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_port(self.port, self.proc, self.log, "slapd")
        _wait_port(self.ldaps_port, self.proc, self.log, "slapd (ldaps)")
        data = self.directory / "users.ldif"
        data.write_text(ldif(self.users), encoding="utf-8")
        done = subprocess.run(
            [LDAPADD, "-x", "-H", self.url, "-D", ROOT_DN, "-w", ROOT_PW, "-f", str(data)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            self.stop()
            raise RuntimeError(f"ldapadd failed ({done.returncode}): {done.stdout}{done.stderr}")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if not os.environ.get("LILT_TEST_KEEP"):
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> "Slapd":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Saslauthd:
    """`saslauthd -a ldap` against `slapd`, socket at `self.socket`."""

    def __init__(self, slapd: Slapd) -> None:
        self.slapd = slapd
        self.directory = make_workdir("lilt-saslauthd-")
        self.run_dir = self.directory / "run"
        self.run_dir.mkdir()
        self.socket = self.run_dir / "mux"
        self.log = self.directory / "saslauthd.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Saslauthd":
        conf = self.directory / "saslauthd.conf"
        conf.write_text(
            f"ldap_servers: {self.slapd.url}/\n"
            f"ldap_search_base: {PEOPLE}\n"
            "ldap_filter: (uid=%u)\n"
            f"ldap_bind_dn: {ROOT_DN}\n"
            f"ldap_password: {ROOT_PW}\n"
        )
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [str(SASLAUTHD), "-a", "ldap", "-O", str(conf), "-m", str(self.run_dir),
                 "-n", "1", "-d"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # saslauthd ends its whole process group on SIGTERM: give it its own.
                start_new_session=True,
            )
        deadline = time.monotonic() + 20.0
        while not self.socket.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"saslauthd did not create {self.socket}\n{tail(self.log)}")
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if not os.environ.get("LILT_TEST_KEEP"):
            shutil.rmtree(self.directory, ignore_errors=True)
