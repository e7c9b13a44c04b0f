"""Where long runs and feature caches live: outside the work tree, so a fresh checkout finds them.

A checkout is laid anew at every session while the machine (and its home folder) often stays, so
a CPU training run longer than a session, and the backbone features of every photo, are kept in
`ENVWATCH_CACHE` (default `~/.cache/envwatch`): `envwatch train --resume` and `envwatch scene`
pick up there what an earlier checkout left.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The cache root, created on first use."""
    root = Path(os.environ.get("ENVWATCH_CACHE") or Path.home() / ".cache" / "envwatch").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root
