"""The first run (issue 18): `lilt --help` lists every command with its arguments and a
line each, as prosodyctl does; the development setup (no --config) prints no s2s
warnings, makes a certificate whose subject is the host name, and prints commands that
work when pasted as shown (run here, from the printed line).
"""

from __future__ import annotations

import shlex
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from lilt_harness import paths

pytestmark = pytest.mark.lilt_only

COMMANDS = [
    "register USER HOST [PASSWORD]",
    "unregister USER HOST",
    "adduser JID",
    "passwd JID",
    "deluser JID",
    "check [config]",
    "reload",
    "status",
    "stop",
    "start",
    "about",
    "help",
]


def lilt(*args: str, cwd: Path | None = None, timeout: float = 30) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(paths.lilt_binary()), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def test_help_lists_every_command(tmp_path):
    done = lilt("--help", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    for usage in COMMANDS:
        line = [l for l in lines if l.strip().startswith(usage + " ") or l.strip() == usage]
        assert line, f"{usage!r} not in --help:\n{done.stdout}"
        about = line[0].strip()[len(usage) :].strip()
        assert about, f"{usage!r} has no description"
    for code in ("66", "69", "73", "78"):
        assert any(l.strip().startswith(code + " ") for l in lines), done.stdout
    # `lilt help` shows the same list.
    # (Without --config a command uses the development setup, made in the cwd.)
    assert "reload" in lilt("help", cwd=tmp_path).stdout


def test_development_setup_first_run(tmp_path):
    done = lilt("check", "config", cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "s2s" not in output, output
    # Message carbons and client state indication are on (and loaded: the check passed).
    config = next((tmp_path / "lilt-data").glob("*.cfg.lua")).read_text()
    assert '"carbons"' in config and '"csi_simple"' in config, config
    cert = x509.load_pem_x509_certificate((tmp_path / "lilt-data/certs/localhost.crt").read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "localhost"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]

    # The server itself listens on 127.0.0.1:5222; skip that part when it is taken.
    probe = socket.socket()
    try:
        probe.bind(("127.0.0.1", 5222))
    except OSError:
        pytest.skip("127.0.0.1:5222 is in use; the development server cannot start here")
    finally:
        probe.close()
    proc = subprocess.Popen(
        [str(paths.lilt_binary())],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        printed = []
        for line in proc.stdout:
            printed.append(line)
            if "Your own config" in line:
                break
        text = "".join(printed)
        register = [l for l in printed if "Create an account:" in l]
        assert register, text
        command = shlex.split(register[0].split("Create an account:", 1)[1])
        assert command[-4:] == ["register", "alice", "localhost", "PASSWORD"], command
        command[-1] = "alice-pw"
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stdout + done.stderr
        assert (tmp_path / "lilt-data/localhost/accounts/alice.dat").is_file()
        # `reload` works in the development setup too (it has a pidfile).
        done = subprocess.run(
            command[:-4] + ["reload"], cwd=tmp_path, capture_output=True, text=True, timeout=30
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 0
    assert "s2s" not in stderr, stderr
    assert "\x1b" not in stderr
