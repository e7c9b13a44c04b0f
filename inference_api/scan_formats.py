"""Writers that turn each `ScanResult` into one record of `envwatch scan` output, as it arrives.

Every writer flushes after each image, so whatever was scanned before a crash or Ctrl-C is on
disk. The three formats answer different questions:

- **jsonl**: everything, one JSON object per image (errors too: `{"image", "error"}`).
- **csv**: one row per (image, problem), for a spreadsheet. An image with no problem still gets
  one row with the problem columns empty, and an unreadable image gets one row with only `image`
  and `error`, so every scanned image appears at least once and a row never mixes two problems.
  Detections are not listed (a box per row beside problem rows is confusing); the `detections`
  column gives how many were reported for the image. Columns: see `CSV_COLUMNS`.
- **geojson**: one Feature per problem for a map (RFC 7946); the geometry is the problem's place
  on the ground when the image is georeferenced (its box outline as a Polygon, else a Point; see
  model/georef.py), else the photo's GPS Point, else `null`. Images without problems and errors
  have no Feature. The closing `]}` is written on exit (also on Ctrl-C), so only a killed scan
  leaves it unclosed.

A writer can continue an output a resumed scan cut back (scan_manifest.py): `state()` is what it
needs to know about what it wrote, and `resume` gives that back instead of writing a header again.

Image paths are written as `path_text` gives them, by every writer and by the manifest, so a
file name that is not valid UTF-8 (a GBK name copied from Windows) is scanned and listed like
any other instead of failing the UTF-8 output, and `--resume` recognises it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from PIL import Image

from inference_api.spreadsheet import safe_record
from model.georef import Position
from model.images import IMAGE_SUFFIXES, path_text
from model.problems import Problem
from model.taxonomy import PROBLEMS_BY_KEY

if TYPE_CHECKING:
    from inference_api.scan import ScanResult

CSV_COLUMNS = (
    "image", "width", "height", "detections", "problem", "name_en", "name_zh", "score", "label",
    "extent", "x1", "y1", "x2", "y2", "lat", "lon", "alt", "ground_lat", "ground_lon", "ground_error_m", "captured_at",
    "model", "error",
)  # fmt: skip


class OutputRefused(ValueError):
    """An `--out` that may destroy a file the user keeps; the message says which and why."""


def _file_id(path: Path) -> tuple[int, int]:
    """What makes two names the same file: also through links, `..` and hard links."""
    stat = path.stat()
    return stat.st_dev, stat.st_ino


def _is_image(path: Path) -> bool:
    """Whether Pillow recognises `path` as an image (it reads the header only)."""
    try:
        with Image.open(path):
            return True
    except Exception:  # not an image, or unreadable: either way not a photo to protect
        return False


def refuse_unsafe_output(out: Path, inputs: Iterable[Path], inputs_are: str, written: Iterable[Path] = ()) -> None:
    """Refuse an `--out` that may destroy an input or a photo, before anything is opened for writing.

    Opening an output empties it, so one slipped argument (`envwatch scan --out a.jpg b.jpg`,
    `envwatch compare old.jsonl new.jsonl --out old.jsonl`) would destroy a photo or the earlier
    scan and then report on an empty file. Refused: an output, or a file written beside it
    (`written`, e.g. scan's manifest), that is one of the `inputs` under any name (same device and
    inode: links, `..`, hard links); an output with an image suffix; and an existing file that is
    an image whatever its name. `inputs_are` names the inputs in the message ("one of the photos
    to scan"). `envwatch scan` and `envwatch compare` both use this, so both refuse the same.
    """
    kept = {_file_id(path) for path in inputs}
    for target in (out, *written):
        if target.is_file() and _file_id(target) in kept:
            raise OutputRefused(f"--out {out} would overwrite {target}, {inputs_are}; nothing was written")
    if out.suffix.lower() in IMAGE_SUFFIXES:
        raise OutputRefused(
            f"--out {out} has a photo's suffix ({out.suffix}): refusing to write results over what may be a photo;"
            " name a .jsonl, .csv or .geojson file (nothing was written)"
        )
    if out.is_file() and _is_image(out):
        raise OutputRefused(f"--out {out} is an image: refusing to overwrite it; nothing was written")


def open_output(path: Path | None) -> TextIO:
    """`path` opened for UTF-8 text (Chinese problem names), or stdout made UTF-8 when None."""
    if path is None:
        sys.stdout.reconfigure(encoding="utf-8", newline="")
        return sys.stdout
    return path.open("w", encoding="utf-8", newline="")


def problem_record(problem: Problem, position: Position | None) -> dict:
    kind = PROBLEMS_BY_KEY[problem.type]
    located = position.as_dict() if position else None
    return {**problem.as_dict(), "name_zh": kind.name_zh, "name_en": kind.name_en, "position": located}


def image_record(result: ScanResult) -> dict:
    """The JSONL object for one image (docs/scan.md shows one)."""
    if result.error:
        return {"image": result.image, "error": result.error}
    return {
        "image": result.image,
        "width": result.width,
        "height": result.height,
        "sha256": result.sha256,
        "detections": result.detections.to_list() if result.detections is not None else [],
        "problems": [problem_record(p, at) for p, at in zip(result.problems, result.positions, strict=True)],
        "gps": result.gps,
        "georef": {"method": result.located_by, "footprint": result.footprint} if result.located_by else None,
        "tiled": result.tiled,
        "captured_at": result.captured_at.isoformat() if result.captured_at else None,
        "model": result.model,
        "warnings": result.warnings,
    }


class Writer:
    """Base of the format writers: `write` each result in scan order, then `close` once."""

    def __init__(self, stream: TextIO, resume: dict | None = None) -> None:
        self.stream = stream

    def write(self, result: ScanResult) -> None:
        """Write `result` and flush it; its image path as `path_text` (whoever made the result)."""
        self.emit(dataclasses.replace(result, image=path_text(result.image)))
        self.stream.flush()

    def state(self) -> dict:
        """What a writer continuing this output must know about it (see scan_manifest.py)."""
        return {}

    def emit(self, result: ScanResult) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.stream.flush()


class JsonlWriter(Writer):
    def emit(self, result: ScanResult) -> None:
        self.stream.write(json.dumps(image_record(result), ensure_ascii=False) + "\n")


class CsvWriter(Writer):
    def __init__(self, stream: TextIO, resume: dict | None = None) -> None:
        super().__init__(stream)
        self.rows = csv.DictWriter(stream, CSV_COLUMNS)
        if resume is None:
            self.rows.writeheader()

    def emit(self, result: ScanResult) -> None:
        if result.error:
            self.rows.writerow(safe_record({"image": result.image, "error": result.error}))
            return
        record = image_record(result)
        base = {
            "image": result.image,
            "width": result.width,
            "height": result.height,
            "detections": len(record["detections"]),
            **(result.gps or {}),
            "captured_at": record["captured_at"],
            "model": result.model,
        }
        for problem in record["problems"] or [None]:
            row = dict(base)
            if problem:
                x1, y1, x2, y2 = problem["box"]
                row |= {"problem": problem["type"], "x1": x1, "y1": y1, "x2": x2, "y2": y2}
                row |= {key: problem[key] for key in ("name_en", "name_zh", "score", "label", "extent")}
                if problem["position"]:
                    row |= {f"ground_{key}": problem["position"][key] for key in ("lat", "lon", "error_m")}
            self.rows.writerow(safe_record(row))


class GeoJsonWriter(Writer):
    def __init__(self, stream: TextIO, resume: dict | None = None) -> None:
        super().__init__(stream)
        self.features = resume["features"] if resume else 0
        if resume is None:
            stream.write('{"type": "FeatureCollection", "features": [\n')

    def state(self) -> dict:
        return {"features": self.features}

    def emit(self, result: ScanResult) -> None:
        if result.error:
            return
        record = image_record(result)
        photo = None
        if result.gps:
            lat, lon, alt = result.gps["lat"], result.gps["lon"], result.gps["alt"]
            photo = {"type": "Point", "coordinates": [lon, lat] if alt is None else [lon, lat, alt]}
        for problem in record["problems"]:
            position = problem.pop("position")
            properties = {"image": result.image, **problem, "captured_at": record["captured_at"], "model": result.model}
            geometry = photo
            properties |= {"located_by": "photo_gps" if photo else None, "error_m": None}
            if position:
                geometry = (
                    {"type": "Polygon", "coordinates": [position["polygon"]]}
                    if position["polygon"]
                    else {"type": "Point", "coordinates": [position["lon"], position["lat"]]}
                )
                properties |= {"located_by": result.located_by, "error_m": position["error_m"]}
            feature = {"type": "Feature", "geometry": geometry, "properties": properties}
            self.stream.write((",\n" if self.features else "") + json.dumps(feature, ensure_ascii=False))
            self.features += 1

    def close(self) -> None:
        self.stream.write("\n]}\n")
        super().close()


WRITERS: dict[str, type[Writer]] = {"jsonl": JsonlWriter, "csv": CsvWriter, "geojson": GeoJsonWriter}
