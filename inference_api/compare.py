"""`envwatch compare OLD NEW`: a repeat scan of the same area (回头看), finding by finding.

Inspectors fly or walk the same villages again weeks later to check that problems were dealt
with. Given two `envwatch scan` JSONL files, every problem of the earlier scan is reported as
`still_there` (the later scan has a problem of the same type at the same place), `gone` (the
later scan looked there and found none) or `not_covered` (the later scan did not look there, so
nothing can be said), and every unmatched problem of the later scan as `new`.

"The same place" depends on what is known:

- both georeferenced (model/georef.py): ground distance at most `--distance` metres, or the two
  positions' combined error (`sqrt(e1² + e2²)`) when that is larger, since a match cannot be
  asked to be more exact than the positions are;
- otherwise, on the same image, the boxes overlap (IoU at least `--iou`). Images are the same
  when their paths relative to each scan's common folder are equal (`2024-05/cam3/IMG_1.jpg`
  and `2024-06/cam3/IMG_1.jpg`): fixed cameras or re-shot viewpoints named the same way.

Pairs are matched greedily, closest first (distance over its limit, or 1 - IoU), each finding
at most once. A later scan "looked" at a georeferenced spot when the spot lies in one of its
images' ground footprints, and at an image-only finding when it scanned that image.

Exit 2, nothing written, for: an `--out` that may destroy one of the scans or a photo (the check
`envwatch scan` makes, `refuse_unsafe_output`), a record whose fields comparing uses are wrong
(`file:line:` says which, `load_scan`), a scan file with no record, and options that are no
number in range. The output is written whole or not at all (`save`).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TextIO

from inference_api.scan_formats import OutputRefused, open_output, refuse_unsafe_output
from inference_api.spreadsheet import safe_record
from model.files import mode_for, write_whole
from model.georef import Ring, distance_m

STATUSES = ("still_there", "gone", "not_covered", "new")


class CompareError(ValueError):
    """A scan file cannot be compared; the message says why."""


@dataclass(frozen=True)
class Seen:
    """One problem of one scan."""

    image: str
    key: str
    """The image path relative to the scan's common folder: how two scans name the same view."""
    type: str
    score: float
    box: tuple[float, float, float, float]
    position: dict | None
    """{"lat", "lon", "error_m", ...} when georeferenced."""

    def as_dict(self) -> dict:
        return {"image": self.image, "score": self.score, "box": list(self.box), "position": self.position}


@dataclass(frozen=True)
class ScanView:
    """What one scan saw: its problems, the images it read, and their ground footprints."""

    findings: list[Seen]
    images: set[str]
    footprints: list[Ring]


@dataclass(frozen=True)
class Change:
    status: str
    type: str
    old: Seen | None
    new: Seen | None
    distance_m: float | None = None
    iou: float | None = None

    def as_dict(self) -> dict:
        return {
            "status": self.status,
            "type": self.type,
            "old": self.old.as_dict() if self.old else None,
            "new": self.new.as_dict() if self.new else None,
            "distance_m": None if self.distance_m is None else round(self.distance_m, 1),
            "iou": None if self.iou is None else round(self.iou, 3),
        }


def load_scan(path: Path) -> ScanView:
    """The problems and coverage of an `envwatch scan` JSONL file (unreadable images count as not seen).

    Every record and every field that comparing uses is checked here, so that a hand-edited, cut
    or foreign file is refused with `file:line: what is wrong` instead of failing half-way through
    matching or writing. A file with no record at all is refused too: an empty output is a scan
    that never ran (or the wrong file), and comparing against it would call every finding `new`
    (or `not_covered`) with nothing to say so.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise CompareError(f"{path}: not an envwatch scan JSONL file ({exc})") from None
    records = [_record(path, number, line) for number, line in enumerate(lines, 1) if line.strip()]
    if not records:
        raise CompareError(f"{path}: holds no scan records (an empty output is no scan: did the scan run?)")
    scanned = [r for r in records if "error" not in r]
    keys = _view_keys([r["image"] for r in scanned])
    findings = [
        Seen(r["image"], keys[r["image"]], p["type"], p["score"], tuple(p["box"]), p.get("position"))
        for r in scanned
        for p in r["problems"]
    ]
    footprints = [r["georef"]["footprint"] for r in scanned if (r.get("georef") or {}).get("footprint")]
    return ScanView(findings, set(keys.values()), footprints)


def _record(path: Path, number: int, line: str) -> dict:
    """Line `number` of `path`, checked: the error names the file and line, so it can be found and fixed."""
    try:
        record = json.loads(line)
        _check_record(record)
    except json.JSONDecodeError as exc:
        raise CompareError(f"{path}:{number}: not an envwatch scan record: not JSON ({exc})") from None
    except CompareError as exc:
        raise CompareError(f"{path}:{number}: not an envwatch scan record: {exc}") from None
    return record


def _check_record(record: object) -> None:
    """Raise CompareError saying what is wrong with one line of a scan, for the fields comparing uses."""
    if not isinstance(record, dict):
        raise CompareError(f"a JSON object is expected, not {type(record).__name__}")
    if not isinstance(record.get("image"), str):
        raise CompareError("`image` must be the photo's path (a string)")
    if "error" in record:
        return  # an unreadable photo: nothing else is used
    if not isinstance(record.get("problems"), list):
        raise CompareError("`problems` must be a list (or the record an `error`)")
    for problem in record["problems"]:
        _check_problem(problem)
    georef = record.get("georef")
    if georef is not None and not isinstance(georef, dict):
        raise CompareError("`georef` must be an object or null")
    footprint = (georef or {}).get("footprint")
    if footprint and not (isinstance(footprint, list) and len(footprint) >= 3 and all(map(_is_point, footprint))):
        raise CompareError("`georef.footprint` must be a ring of [lon, lat] points")


def _check_problem(problem: object) -> None:
    if not isinstance(problem, dict):
        raise CompareError("each problem must be an object")
    if not isinstance(problem.get("type"), str) or not problem["type"]:
        raise CompareError("a problem has no `type`")
    if not _is_number(problem.get("score")):
        raise CompareError("a problem's `score` must be a finite number")
    box = problem.get("box")
    if not (isinstance(box, list) and len(box) == 4 and all(map(_is_number, box))):
        raise CompareError("a problem's `box` must be [x1, y1, x2, y2], four finite numbers")
    if box[0] > box[2] or box[1] > box[3]:
        raise CompareError("a problem's `box` must have x1 <= x2 and y1 <= y2")
    position = problem.get("position")
    if position is None:
        return
    if not (isinstance(position, dict) and all(_is_number(position.get(k)) for k in ("lat", "lon", "error_m"))):
        raise CompareError("a problem's `position` must be null or have finite `lat`, `lon` and `error_m`")
    if not (-90 <= position["lat"] <= 90 and -180 <= position["lon"] <= 180 and position["error_m"] >= 0):
        raise CompareError("a problem's `position` is off the globe or has a negative `error_m`")


def _is_number(value: object) -> bool:
    """A finite int or float; JSON booleans are not numbers here, nor NaN or Infinity (which json reads)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_point(point: object) -> bool:
    return isinstance(point, list) and len(point) == 2 and all(map(_is_number, point))


def _view_keys(images: list[str]) -> dict[str, str]:
    """Each image's path relative to the folder all of them are in (the whole path if they share none)."""
    try:
        root = PurePath(os.path.commonpath([str(PurePath(image).parent) for image in images]))
        return {image: PurePath(image).relative_to(root).as_posix() for image in images}
    except ValueError:  # no images, or absolute and relative paths mixed
        return {image: PurePath(image).as_posix() for image in images}


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _inside(lon: float, lat: float, ring: Ring) -> bool:
    """Even-odd test; footprints are small enough for lon/lat to be treated as a plane."""
    hit = False
    for (x1, y1), (x2, y2) in zip(ring, ring[1:], strict=False):
        if (y1 > lat) != (y2 > lat) and lon < x1 + (lat - y1) * (x2 - x1) / (y2 - y1):
            hit = not hit
    return hit


def _pair(old: Seen, new: Seen, max_m: float, min_iou: float) -> tuple[float, float | None, float | None] | None:
    """(closeness cost in [0, 1], distance, IoU) when the two can be the same problem, else None."""
    if old.type != new.type:
        return None
    if old.position and new.position:
        distance = distance_m(old.position, new.position)
        limit = max(max_m, math.hypot(old.position["error_m"], new.position["error_m"]))
        return (distance / limit, distance, None) if distance <= limit else None
    if old.key == new.key:
        overlap = _iou(old.box, new.box)
        return (1 - overlap, None, overlap) if overlap >= min_iou else None
    return None


def compare(old: ScanView, new: ScanView, max_m: float = 10.0, min_iou: float = 0.3) -> list[Change]:
    """Every old problem's fate and every new problem, old ones first in scan order."""
    pairs = []
    for i, before in enumerate(old.findings):
        for j, after in enumerate(new.findings):
            found = _pair(before, after, max_m, min_iou)
            if found is not None:
                pairs.append((found[0], i, j, found[1], found[2]))
    matched_old: dict[int, Change] = {}
    matched_new: set[int] = set()
    for _, i, j, distance, overlap in sorted(pairs):
        if i not in matched_old and j not in matched_new:
            before, after = old.findings[i], new.findings[j]
            matched_old[i] = Change("still_there", before.type, before, after, distance, overlap)
            matched_new.add(j)
    changes = []
    for i, before in enumerate(old.findings):
        if i in matched_old:
            changes.append(matched_old[i])
            continue
        if before.position:
            looked = any(_inside(before.position["lon"], before.position["lat"], ring) for ring in new.footprints)
        else:
            looked = before.key in new.images
        changes.append(Change("gone" if looked else "not_covered", before.type, before, None))
    changes += [Change("new", after.type, None, after) for j, after in enumerate(new.findings) if j not in matched_new]
    return changes


CSV_COLUMNS = (
    "status", "type", "distance_m", "iou",
    "old_image", "old_score", "old_x1", "old_y1", "old_x2", "old_y2", "old_lat", "old_lon",
    "new_image", "new_score", "new_x1", "new_y1", "new_x2", "new_y2", "new_lat", "new_lon",
)  # fmt: skip


def _csv_row(change: Change) -> dict:
    row = {key: value for key, value in change.as_dict().items() if key in CSV_COLUMNS}
    for side, seen in (("old", change.old), ("new", change.new)):
        if seen is None:
            continue
        row |= {f"{side}_image": seen.image, f"{side}_score": seen.score}
        row |= {f"{side}_{k}": v for k, v in zip(("x1", "y1", "x2", "y2"), seen.box, strict=True)}
        if seen.position:
            row |= {f"{side}_lat": seen.position["lat"], f"{side}_lon": seen.position["lon"]}
    return row


def _feature(change: Change) -> dict:
    """A GeoJSON Feature at the latest known position of the problem (null geometry when not georeferenced)."""
    seen = change.new if change.new and change.new.position else change.old
    position = seen.position if seen else None
    geometry = {"type": "Point", "coordinates": [position["lon"], position["lat"]]} if position else None
    return {"type": "Feature", "geometry": geometry, "properties": change.as_dict()}


def write(changes: list[Change], kind: str, stream: TextIO) -> None:
    if kind == "jsonl":
        stream.writelines(json.dumps(change.as_dict(), ensure_ascii=False) + "\n" for change in changes)
    elif kind == "csv":
        rows = csv.DictWriter(stream, CSV_COLUMNS)
        rows.writeheader()
        rows.writerows(safe_record(_csv_row(change)) for change in changes)
    else:
        collection = {"type": "FeatureCollection", "features": [_feature(change) for change in changes]}
        stream.write(json.dumps(collection, ensure_ascii=False) + "\n")


def _check_options(args: argparse.Namespace) -> None:
    """`--distance nan` would pass `<= 0` (every comparison with NaN is false) and then match nothing,
    turning a finding 1 m away into `gone` + `new`; `inf` would match any two of a type anywhere."""
    if not (math.isfinite(args.distance) and args.distance > 0):
        raise CompareError(f"--distance must be a number of metres above 0, not {args.distance}")
    if not 0 < args.iou <= 1:  # also false for NaN
        raise CompareError(f"--iou must be in (0, 1], not {args.iou}")


def render(changes: list[Change], kind: str) -> str:
    """The whole output as text, made before the output file is touched."""
    text = io.StringIO(newline="")
    write(changes, kind, text)
    return text.getvalue()


def save(text: str, out: Path) -> None:
    """Write `text` to `out` whole or not at all.

    A comparison is small, so it is written to a temporary file beside `out` and moved over it:
    a failure part-way (disk full, interrupted) leaves the earlier file as it was instead of cut
    short. A link is followed (the file it names is replaced, not the link), and a pipe or device
    (`/dev/stdout`) is written to directly, since there is nothing there to keep.
    """
    target = out.resolve()
    if target.exists() and not target.is_file():
        with target.open("w", encoding="utf-8", newline="") as stream:
            stream.write(text)
        return
    try:
        write_whole(target, text.encode("utf-8"), mode_for(target))
    except OSError as exc:
        raise CompareError(f"cannot write --out {out} ({exc}); what was there is left as it was") from None


def main(args: argparse.Namespace) -> int:
    try:
        _check_options(args)
        old, new = load_scan(args.old), load_scan(args.new)
        if args.out is not None:
            refuse_unsafe_output(args.out, [args.old, args.new], "one of the scans to compare")
        changes = compare(old, new, args.distance, args.iou)
        text = render(changes, args.format)
        if args.out is None:
            open_output(None).write(text)
        else:
            save(text, args.out)
    except (CompareError, OutputRefused, OSError) as exc:
        print(f"envwatch compare: {exc}", file=sys.stderr)
        return 2
    counts = Counter(change.status for change in changes)
    print("envwatch compare: " + ", ".join(f"{counts[s]} {s}" for s in STATUSES), file=sys.stderr)
    return 0
