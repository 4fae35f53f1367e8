"""Running a server under test: lilt (the default) or Debian's Prosody (the reference).

Both get the same prosody.cfg.lua in a fresh directory that also holds the data
directory and the certificates. lilt listens on ports the OS picks (`c2s_ports = { 0 }`)
and says which on stdout; Prosody 0.12 cannot report such ports, so it gets free ports
picked here. Either way the runner waits until the server serves the test domain.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from . import paths
from .certs import TestPki
from .config import DOMAIN, ServerConfig
from .rawstream import RawStream, StreamClosed

LISTENING = re.compile(r"^lilt: listening (\S+) on (.+):(\d+)\s*$")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class ServerError(Exception):
    """The server did not start, stop or answer as the harness expected."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_workdir(prefix: str) -> Path:
    """A fresh directory that Prosody's unprivileged user can reach."""
    base = os.environ.get("LILT_TEST_TMP") or tempfile.gettempdir()
    directory = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    directory.chmod(0o755)
    return directory


def tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path} not readable)"
    return "\n".join(text.splitlines()[-lines:])


class Server:
    """One server process serving the config in `directory/prosody.cfg.lua`."""

    kind = "abstract"

    def __init__(self, directory: Path, pki: TestPki) -> None:
        self.directory = directory
        self.pki = pki
        self.config_path = directory / "prosody.cfg.lua"
        self.data_path = directory / "data"
        self.certs_path = directory / "certs"
        self.address = "127.0.0.1"
        self.c2s_port = 0
        self.direct_tls_port: int | None = None
        self.exit_code: int | None = None
        # Set by write_config (or share_config): what the config asks for.
        self.expect_direct_tls = False
        self.configured_ports: tuple[int, int | None] = (0, None)

    # -- configuration ------------------------------------------------------------

    def _ports(self, direct_tls: bool) -> tuple[int, int | None]:
        raise NotImplementedError

    def write_config(
        self,
        config: ServerConfig,
        *,
        direct_tls: bool = True,
        ports: tuple[int, int | None] | None = None,
    ) -> None:
        """Fill in listeners and paths, install certificates, write prosody.cfg.lua."""
        c2s, direct = ports if ports is not None else self._ports(direct_tls)
        settings = {
            "interfaces": ["127.0.0.1"],
            "c2s_ports": [c2s],
            "c2s_direct_tls_ports": [direct] if direct is not None else [],
            "s2s_ports": [],
            "data_path": str(self.data_path),
            "pidfile": str(self.directory / "server.pid"),
            "certificates": str(self.certs_path),
        }
        settings.update(self.extra_globals())
        merged = ServerConfig(globals={**settings, **config.globals}, hosts=config.hosts)
        self.data_path.mkdir(parents=True, exist_ok=True)
        self.pki.install(self.certs_path, list(config.hosts))
        self.config_path.write_text(merged.render())
        self.expect_direct_tls = direct is not None
        self.configured_ports = (c2s, direct)

    def extra_globals(self) -> dict:
        return {}

    def share_config(self, other: "Server") -> None:
        """Serve the config (and so the data) that `other` wrote, unchanged."""
        if other.config_path != self.config_path:
            raise ServerError("servers can only share a config in the same directory")
        self.expect_direct_tls = other.expect_direct_tls
        self.configured_ports = other.configured_ports

    # -- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> int | None:
        raise NotImplementedError

    def logs(self) -> str:
        raise NotImplementedError

    def wait_ready(self, deadline: float) -> None:
        """Until a stream to the test domain gets its features (the host is up)."""
        last: Exception | None = None
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with RawStream(self.address, self.c2s_port, DOMAIN, timeout=2.0) as stream:
                    stream.open()
                    return
            except (OSError, StreamClosed, TimeoutError) as err:
                last = err
                time.sleep(0.1)
        raise ServerError(f"{self.kind} did not serve {DOMAIN} in time ({last})\n{self.logs()}")

    def check_alive(self) -> None:
        raise NotImplementedError

    # -- prosodyctl-style commands ------------------------------------------------

    def ctl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        raise NotImplementedError

    def register(self, user: str, host: str, password: str) -> None:
        done = self.ctl("register", user, host, password)
        if done.returncode != 0:
            raise ServerError(
                f"{self.kind} register {user}@{host} failed ({done.returncode}):\n"
                f"{done.stdout}{done.stderr}"
            )

    def cleanup(self) -> None:
        if os.environ.get("LILT_TEST_KEEP"):
            return
        shutil.rmtree(self.directory, ignore_errors=True)


class LiltServer(Server):
    kind = "lilt"

    def __init__(self, directory: Path, pki: TestPki) -> None:
        super().__init__(directory, pki)
        self.binary = paths.lilt_binary()
        self.proc: subprocess.Popen | None = None
        self.listening: dict[str, tuple[str, int]] = {}
        self._seen = threading.Condition()
        self.stdout_log = directory / "lilt.stdout.log"
        self.stderr_log = directory / "lilt.stderr.log"

    def _ports(self, direct_tls: bool) -> tuple[int, int | None]:
        return (0, 0 if direct_tls else None)

    def _binary(self) -> str:
        if not self.binary.is_file():
            raise ServerError(
                f"lilt binary not found at {self.binary}: run `cargo build -p lilt` "
                "(or set LILT_BIN)"
            )
        return str(self.binary)

    def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        with open(self.stdout_log, "a", encoding="utf-8") as log:
            for line in self.proc.stdout:
                log.write(line)
                log.flush()
                match = LISTENING.match(line)
                if match:
                    kind, host, port = match.group(1), match.group(2), int(match.group(3))
                    with self._seen:
                        self.listening.setdefault(kind, (host.strip("[]"), port))
                        self._seen.notify_all()
        with self._seen:
            self._seen.notify_all()

    def start(self) -> None:
        # A restart listens on new ports (port 0): forget the previous run's.
        self.listening.clear()
        stderr = open(self.stderr_log, "ab")
        self.proc = subprocess.Popen(
            [self._binary(), "--config", str(self.config_path)],
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        stderr.close()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        wanted = {"c2s"} | ({"c2s_direct_tls"} if self.expect_direct_tls else set())
        deadline = time.monotonic() + START_TIMEOUT
        with self._seen:
            while not wanted <= set(self.listening):
                self.check_alive()
                left = deadline - time.monotonic()
                if left <= 0:
                    raise ServerError(
                        f"lilt did not report listeners {sorted(wanted)} in "
                        f"{START_TIMEOUT}s (saw {self.listening})\n{self.logs()}"
                    )
                self._seen.wait(min(left, 0.2))
        self.address, self.c2s_port = self.listening["c2s"]
        if self.expect_direct_tls:
            self.direct_tls_port = self.listening["c2s_direct_tls"][1]
        self.wait_ready(deadline)

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise ServerError(f"lilt exited with {self.proc.returncode}\n{self.logs()}")

    def stop(self) -> int | None:
        if self.proc is None:
            return self.exit_code
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                self.exit_code = None
                return None
        self.exit_code = proc.returncode
        return self.exit_code

    def logs(self) -> str:
        return (
            f"--- lilt stdout ({self.stdout_log}) ---\n{tail(self.stdout_log)}\n"
            f"--- lilt stderr ({self.stderr_log}) ---\n{tail(self.stderr_log)}"
        )

    def ctl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self._binary(), "--config", str(self.config_path), *args],
            cwd=self.directory,
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=60,
        )


class ProsodyServer(Server):
    """Debian's Prosody 0.12 through ../shared/tools/reference-prosody."""

    kind = "prosody"

    def __init__(self, directory: Path, pki: TestPki) -> None:
        super().__init__(directory, pki)
        self.pid: str | None = None
        self.debug_log = directory / "prosody-debug.log"
        self.console_log = directory / "prosody.log"

    def _ports(self, direct_tls: bool) -> tuple[int, int | None]:
        return (free_port(), free_port() if direct_tls else None)

    def extra_globals(self) -> dict:
        return {"log": {"debug": str(self.debug_log)}}

    def start(self) -> None:
        done = subprocess.run(
            ["bash", str(paths.REFERENCE_PROSODY), "start", str(self.directory)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            raise ServerError(f"reference-prosody start failed:\n{done.stdout}{done.stderr}")
        self.pid = done.stdout.strip().splitlines()[-1]
        self.c2s_port, self.direct_tls_port = self.configured_ports
        self.wait_ready(time.monotonic() + START_TIMEOUT)

    def check_alive(self) -> None:
        if self.pid is None:
            return
        try:
            os.kill(int(self.pid), 0)
        except ProcessLookupError:
            raise ServerError(f"prosody exited\n{self.logs()}") from None

    def stop(self) -> int | None:
        if self.pid is None:
            return self.exit_code
        pid, self.pid = self.pid, None
        subprocess.run(["bash", str(paths.REFERENCE_PROSODY), "stop", pid], timeout=60, check=False)
        self.exit_code = 0
        return 0

    def logs(self) -> str:
        return (
            f"--- prosody console ({self.console_log}) ---\n{tail(self.console_log)}\n"
            f"--- prosody debug log ({self.debug_log}) ---\n{tail(self.debug_log)}"
        )

    def ctl(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["bash", str(paths.REFERENCE_PROSODY), "ctl", str(self.directory), *args],
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=600,
        )


SERVER_KINDS: dict[str, type[Server]] = {"lilt": LiltServer, "prosody": ProsodyServer}
