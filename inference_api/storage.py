"""Uploaded images on disk, addressed by the sha256 of their bytes.

Content addressing stores a photo once however many inspections upload it, and makes a write
idempotent. Files are written to a temporary name in the same directory and renamed into place,
so a crash never leaves a half-written image under a real name; callers remove the files they
created when the database transaction that would reference them fails.
"""

from __future__ import annotations

import contextlib
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

    def discard(self, sha256: str) -> None:
        """Remove a file this process just created and no committed row references."""
        with contextlib.suppress(FileNotFoundError):
            self.path(sha256).unlink()
