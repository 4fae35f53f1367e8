"""Where things are: the workspace, ../shared, the lilt binary, the reference Prosody tool."""

from __future__ import annotations

import os
from pathlib import Path

# tests/python/lilt_harness/paths.py -> the workspace root is three levels up.
WORKSPACE = Path(__file__).resolve().parents[3]

# The project's shared material lives beside the workspace, as ../shared.
SHARED = WORKSPACE.parent / "shared"
REFERENCE_PROSODY = SHARED / "tools" / "reference-prosody"
FIXTURES = SHARED / "fixtures"

SKIP_NO_SHARED = "skipping: ../shared not found"


def shared_available() -> bool:
    return REFERENCE_PROSODY.is_file()


def lilt_binary() -> Path:
    """The lilt binary under test: $LILT_BIN, else target/debug/lilt."""
    explicit = os.environ.get("LILT_BIN")
    if explicit:
        return Path(explicit)
    target = Path(os.environ.get("CARGO_TARGET_DIR", WORKSPACE / "target"))
    if not target.is_absolute():
        target = WORKSPACE / target
    return target / "debug" / "lilt"


def prosody_usable() -> str | None:
    """None when Debian's Prosody can be run here, else the reason it cannot."""
    if not shared_available():
        return SKIP_NO_SHARED
    if os.geteuid() != 0:
        return "skipping: reference-prosody needs root (runuser, chown)"
    return None
