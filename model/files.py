"""Files written whole or not at all.

The registry, a stored photo and a comparison's output are each read by someone else (the
service, a reviewer, a spreadsheet) at any moment, and a write can fail half-way (disk full, a
killed process). Each is written to a temporary file beside its target (same file system, so
the rename is atomic), synced, and renamed over it: a reader sees the old file or the new one,
never a part, and a failure leaves the target as it was.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path


def write_whole(target: Path, data: bytes, mode: int) -> None:
    """Replace `target` with `data` atomically, with permissions `mode` (mkstemp alone would give 0600)."""
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def mode_for(target: Path) -> int:
    """The permissions `target` has, or those a plain `open` would give it as a new file.

    A file others read (the registry, by a service running as another user) must keep them
    across a rewrite.
    """
    if target.exists():
        return stat.S_IMODE(target.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask
