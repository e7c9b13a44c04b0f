"""Writers that turn each `ScanResult` into one record of `envwatch scan` output, as it arrives.

Every writer flushes after each image, so whatever was scanned before a crash or Ctrl-C is on
disk. The three formats answer different questions:

- **jsonl**: everything, one JSON object per image (errors too: `{"image", "error"}`).
- **csv**: one row per (image, problem), for a spreadsheet. An image with no problem still gets
  one row with the problem columns empty, and an unreadable image gets one row with only `image`
  and `error`, so every scanned image appears at least once and a row never mixes two problems.
  Detections are not listed (a box per row beside problem rows is confusing); the `detections`
  column gives how many were reported for the image. Columns: see `CSV_COLUMNS`.
- **geojson**: one Feature per problem for a map (RFC 7946); the geometry is the photo's GPS
  Point, or `null` when the photo has none. Images without problems and errors have no Feature.
  The closing `]}` is written on exit (also on Ctrl-C), so only a killed scan leaves it unclosed.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from model.problems import Problem
from model.taxonomy import PROBLEMS_BY_KEY

if TYPE_CHECKING:
    from inference_api.scan import ScanResult

CSV_COLUMNS = (
    "image", "width", "height", "detections", "problem", "name_en", "name_zh", "score", "label",
    "x1", "y1", "x2", "y2", "lat", "lon", "alt", "captured_at", "model", "error",
)  # fmt: skip


def open_output(path: Path | None) -> TextIO:
    """`path` opened for UTF-8 text (Chinese problem names), or stdout made UTF-8 when None."""
    if path is None:
        sys.stdout.reconfigure(encoding="utf-8", newline="")
        return sys.stdout
    return path.open("w", encoding="utf-8", newline="")


def problem_record(problem: Problem) -> dict:
    kind = PROBLEMS_BY_KEY[problem.type]
    return {**problem.as_dict(), "name_zh": kind.name_zh, "name_en": kind.name_en}


def image_record(result: ScanResult) -> dict:
    """The JSONL object for one image (docs/scan.md shows one)."""
    if result.error:
        return {"image": result.image, "error": result.error}
    return {
        "image": result.image,
        "width": result.width,
        "height": result.height,
        "detections": result.detections.to_list() if result.detections is not None else [],
        "problems": [problem_record(p) for p in result.problems],
        "gps": result.gps,
        "captured_at": result.captured_at.isoformat() if result.captured_at else None,
        "model": result.model,
        "warnings": result.warnings,
    }


class Writer:
    """Base of the format writers: `write` each result in scan order, then `close` once."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, result: ScanResult) -> None:
        self.emit(result)
        self.stream.flush()

    def emit(self, result: ScanResult) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.stream.flush()


class JsonlWriter(Writer):
    def emit(self, result: ScanResult) -> None:
        self.stream.write(json.dumps(image_record(result), ensure_ascii=False) + "\n")


class CsvWriter(Writer):
    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.rows = csv.DictWriter(stream, CSV_COLUMNS)
        self.rows.writeheader()

    def emit(self, result: ScanResult) -> None:
        if result.error:
            self.rows.writerow({"image": result.image, "error": result.error})
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
                row |= {key: problem[key] for key in ("name_en", "name_zh", "score", "label")}
            self.rows.writerow(row)


class GeoJsonWriter(Writer):
    def __init__(self, stream: TextIO) -> None:
        super().__init__(stream)
        self.features = 0
        stream.write('{"type": "FeatureCollection", "features": [\n')

    def emit(self, result: ScanResult) -> None:
        if result.error:
            return
        record = image_record(result)
        geometry = None
        if result.gps:
            lat, lon, alt = result.gps["lat"], result.gps["lon"], result.gps["alt"]
            geometry = {"type": "Point", "coordinates": [lon, lat] if alt is None else [lon, lat, alt]}
        for problem in record["problems"]:
            properties = {"image": result.image, **problem, "captured_at": record["captured_at"], "model": result.model}
            feature = {"type": "Feature", "geometry": geometry, "properties": properties}
            self.stream.write((",\n" if self.features else "") + json.dumps(feature, ensure_ascii=False))
            self.features += 1

    def close(self) -> None:
        self.stream.write("\n]}\n")
        super().close()


WRITERS: dict[str, type[Writer]] = {"jsonl": JsonlWriter, "csv": CsvWriter, "geojson": GeoJsonWriter}
