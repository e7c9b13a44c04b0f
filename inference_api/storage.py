"""Uploaded images on disk, addressed by the sha256 of their bytes.

Content addressing stores a photo once however many inspections upload it, and makes a write
idempotent. Files are written to a temporary name in the same directory and renamed into place,
so a crash never leaves a half-written image under a real name. When a file may be deleted (no
committed row references it) is decided in inference_api/orphans.py, under a database lock.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from model.files import write_whole


class ImageStore:
    """Images under `root/ab/cd/<sha256>`, where ab and cd are the first hex digits of the hash."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def relative_path(sha256: str) -> str:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError("not a sha256 hex digest")
        return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def path(self, sha256: str) -> Path:
        return self.root / self.relative_path(sha256)

    def put(self, sha256: str, data: bytes) -> bool:
        """Store `data` under its hash; True when this call created the file (False: already there)."""
        target = self.path(sha256)
        if target.exists():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        write_whole(target, data, 0o600)  # photos stay private to the service's user, as they always were
        return True

    def read(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def discard(self, sha256: str) -> bool:
        """Remove the file; only for orphans.discard_unreferenced, which holds the lock that makes it safe."""
        with contextlib.suppress(FileNotFoundError):
            self.path(sha256).unlink()
            return True
        return False

    def free_bytes(self) -> int:
        """Bytes an unprivileged writer may still use on the store's file system."""
        stats = os.statvfs(self.root)
        return stats.f_bavail * stats.f_frsize

    def problem(self, min_free_bytes: int) -> str | None:
        """Why new photos cannot be stored now (not writable, or less free space than `min_free_bytes`), or None."""
        if not os.access(self.root, os.W_OK | os.X_OK):
            return f"the image store {self.root} is not writable"
        free = self.free_bytes()
        if free < min_free_bytes:
            return (
                f"only {free / 1e6:.1f} MB free for the image store {self.root}, "
                f"below ENVWATCH_MIN_FREE_BYTES ({min_free_bytes / 1e6:.1f} MB)"
            )
        return None
