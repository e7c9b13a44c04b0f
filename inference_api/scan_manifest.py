"""Resumable scans: a manifest beside the output file records every image whose result is on disk.

A scan of thousands of drone photos takes hours and gets interrupted (Ctrl-C, a lost node, a
reboot). `--resume` continues it: images the manifest lists are skipped and the rest are
appended to the same output, so the finished file is what one uninterrupted run would write.

The manifest (`OUT.manifest`, JSON lines) starts with the scan's settings and the output's
length after the format's header, then has one line per image, written after that image's
output is flushed: the image, the output's length after it, and the writer's state (a GeoJSON
writer needs to know whether a feature came before, to place the comma). Resuming truncates the
output to the last recorded length, so an image half-written when the scan died, or the
closing `]}` of a GeoJSON file, is dropped and written again rather than duplicated.

Settings that change results (model file, `--conf`, `--tile`, `--format`) must match: resuming
with other settings would mix two scans in one file, so it is refused with the difference.

Images are recorded as `path_text` (model/images.py) writes them, so a name that is not UTF-8
is recorded, and matched on resume, in the same form as in the output. A manifest that is not
one, or was damaged by hand (a header or line missing its fields), is refused with one message
rather than a traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from model.images import path_text

VERSION = 1


class ManifestError(Exception):
    """The scan cannot be resumed as asked; the message says why."""


def manifest_path(out: Path) -> Path:
    return out.with_name(out.name + ".manifest")


def _is_header(line: object) -> bool:
    """Whether `line` is a header with everything resuming reads from it."""
    return (
        isinstance(line, dict)
        and line.get("envwatch_scan_manifest") == VERSION
        and isinstance(line.get("settings"), dict)
        and _has_position(line)
    )


def _is_entry(line: object) -> bool:
    """Whether `line` is an image's line with everything resuming reads from it."""
    return isinstance(line, dict) and isinstance(line.get("image"), str) and _has_position(line)


def _has_position(line: dict) -> bool:
    """The output's length and the writer's state there: resuming cuts back to them."""
    return isinstance(line.get("offset"), int) and isinstance(line.get("writer"), dict)


@dataclass
class Manifest:
    stream: TextIO
    done: set[str] = field(default_factory=set)

    @classmethod
    def start(cls, out: Path, settings: dict, offset: int, writer_state: dict) -> Manifest:
        """A new manifest for a scan writing to `out` (replacing an old one)."""
        stream = manifest_path(out).open("w", encoding="utf-8")
        header = {"envwatch_scan_manifest": VERSION, "settings": settings, "offset": offset, "writer": writer_state}
        stream.write(json.dumps(header, ensure_ascii=False) + "\n")
        stream.flush()
        return cls(stream)

    @classmethod
    def resume(cls, out: Path, settings: dict) -> tuple[Manifest, dict]:
        """The manifest of the scan writing `out`, with `out` cut back to its last recorded image.

        Returns the manifest (open for appending) and the writer state to continue from.
        """
        path = manifest_path(out)
        if not path.is_file() or not out.is_file():
            raise ManifestError(f"nothing to resume: {path} or {out} does not exist (run without --resume)")
        records = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break  # only the last line can be torn (by a crash while writing it)
        if not records or not _is_header(records[0]) or not all(map(_is_entry, records[1:])):
            raise ManifestError(f"{path} is not an envwatch scan manifest")
        header, entries = records[0], records[1:]
        before = header["settings"]
        changed = {key for key in settings.keys() | before.keys() if settings.get(key) != before.get(key)}
        if changed:
            was = ", ".join(f"{key}={before.get(key)!r}" for key in sorted(changed))
            now = ", ".join(f"{key}={settings.get(key)!r}" for key in sorted(changed))
            raise ManifestError(f"the scan in {out} used {was}; this one uses {now}: resume with the same settings")
        last = entries[-1] if entries else header
        length = out.stat().st_size
        if length < last["offset"]:
            raise ManifestError(f"{out} is shorter than its manifest records ({length} < {last['offset']} bytes)")
        with out.open("r+b") as handle:
            handle.truncate(last["offset"])
        stream = path.open("w", encoding="utf-8")
        for line in [header, *entries]:  # rewritten whole, so a torn last line is gone
            stream.write(json.dumps(line, ensure_ascii=False) + "\n")
        stream.flush()
        return cls(stream, {entry["image"] for entry in entries}), last["writer"]

    def record(self, image: str, offset: int, writer_state: dict) -> None:
        """Note that `image`'s result is on disk and the output is `offset` bytes long."""
        image = path_text(image)
        self.stream.write(json.dumps({"image": image, "offset": offset, "writer": writer_state}, ensure_ascii=False))
        self.stream.write("\n")
        self.stream.flush()
        self.done.add(image)

    def close(self) -> None:
        self.stream.close()
