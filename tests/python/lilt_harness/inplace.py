"""Data in place: one server writes through its own client sessions, the other
serves the same data directory (same config, same ports) and reads it back.

`in_place(pki, "prosody", "lilt", config, users, write, read)` starts Debian's
Prosody 0.12 on a fresh directory, runs `write(server)` (which logs clients in
and stores something), stops it, starts lilt on the same `prosody.cfg.lua`
and data directory and runs `read(server)`; the reverse with "lilt",
"prosody". Accounts are registered by the first server.
"""

from __future__ import annotations

from typing import Callable, Iterable

from . import paths
from .config import ServerConfig
from .servers import LiltServer, ProsodyServer, Server, make_workdir

KINDS = {"lilt": LiltServer, "prosody": ProsodyServer}


def prosody_missing() -> str | None:
    """Why Prosody cannot run here (None when it can)."""
    return paths.prosody_usable()


def in_place(
    pki,
    first: str,
    second: str,
    config: ServerConfig,
    users: Iterable[tuple[str, str, str]],
    write: Callable[[Server], None],
    read: Callable[[Server], None],
) -> None:
    directory = make_workdir(f"lilt-inplace-{first}-{second}-")
    writer = KINDS[first](directory, pki)
    reader = KINDS[second](directory, pki)
    # Prosody cannot report ports it picks, so the config gets fixed ones.
    owner = writer if first == "prosody" else reader
    try:
        owner.write_config(config)
        other = reader if owner is writer else writer
        other.share_config(owner)
        for user, host, password in users:
            writer.register(user, host, password)
        writer.start()
        try:
            write(writer)
        finally:
            writer.stop()
        reader.start()
        try:
            read(reader)
        finally:
            reader.stop()
    except BaseException:
        for s in (writer, reader):
            try:
                print(f"--- {s.kind} ---\n{s.logs()}")
            except Exception:  # noqa: BLE001 - logs are best effort
                pass
        raise
    finally:
        writer.stop()
        reader.stop()
        owner.cleanup()
