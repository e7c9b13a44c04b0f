"""Large "drone" images built from the real shared photos, and the metadata drones write.

The shared data has no drone imagery (see its README), so tests and benchmarks make it: a large
background is a mosaic of real street photos (garbage-cn photos whose only boxes are ordinary
bins, so the background itself holds no labelled problem), upscaled; a real problem photo is
pasted into it small, as a burning pile looks from 50-100 m. Georeferenced copies carry real
EXIF and DJI XMP (what a DJI drone writes) or GeoTIFF tags, written with Pillow and tifffile.

A plain module, not a conftest, so the drone benchmarks can import it too.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import cv2
import numpy as np
import tifffile
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from model.images import EXIF_IFD, GPS_IFD, load_image_file
from model.runtime import Detector

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"
STREETS = DATASETS / "garbage-cn" / "valid"
FIRES = DATASETS / "fire-continuous" / "test" / "images"
CELL = 624
"""Side of one background photo in the mosaic (the 480 px originals, upscaled 1.3 times)."""


def street_photos() -> list[Path]:
    """garbage-cn validation photos whose only labelled boxes are bins (class 1): no problem in them."""
    photos = []
    for label in sorted((STREETS / "labels").glob("*.txt")):
        classes = {line.split()[0] for line in label.read_text().splitlines() if line.strip()}
        if classes == {"1"} and (STREETS / "images" / f"{label.stem}.jpg").exists():
            photos.append(STREETS / "images" / f"{label.stem}.jpg")
    return photos


def background(width: int, height: int, first: int = 0) -> np.ndarray:
    """A BGR mosaic of upscaled street photos covering `width` x `height`, starting at photo `first`."""
    photos = street_photos()
    columns, rows = math.ceil(width / CELL), math.ceil(height / CELL)
    cells = [
        cv2.resize(cv2.imread(str(photos[(first + i) % len(photos)])), (CELL, CELL), interpolation=cv2.INTER_CUBIC)
        for i in range(columns * rows)
    ]
    mosaic = np.vstack([np.hstack(cells[r * columns : (r + 1) * columns]) for r in range(rows)])
    return np.ascontiguousarray(mosaic[:height, :width])


def surest_fire(detector: Detector, candidates: int = 40) -> Path:
    """The fire photo (of the first `candidates`) the detector scores highest: the problem to paste."""
    photos = sorted(FIRES.glob("*.jpg"))[:candidates]
    found = detector.detect([load_image_file(path).pixels for path in photos])
    best = [
        max((float(s) for s, label in zip(f.scores, f.labels, strict=True) if label == "fire"), default=0.0)
        for f in found
    ]
    return photos[int(np.argmax(best))]


def paste(image: np.ndarray, photo: Path, side: int, x: int, y: int) -> tuple[float, float, float, float]:
    """Paste `photo` into `image` (in place) with its longer side `side` px at (x, y); its box."""
    pixels = load_image_file(photo).pixels
    scale = side / max(pixels.shape[:2])
    small = cv2.resize(pixels, (round(pixels.shape[1] * scale), round(pixels.shape[0] * scale)), cv2.INTER_AREA)
    image[y : y + small.shape[0], x : x + small.shape[1]] = small
    return (float(x), float(y), float(x + small.shape[1]), float(y + small.shape[0]))


def _dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    degrees = int(value)
    minutes = int((value - degrees) * 60)
    seconds = round(((value - degrees) * 60 - minutes) * 60 * 1_000_000)
    return (IFDRational(degrees, 1), IFDRational(minutes, 1), IFDRational(seconds, 1_000_000))


def dji_xmp(**fields: float | str) -> bytes:
    """An XMP packet as DJI drones write it: `drone-dji:` attributes on one rdf:Description."""
    attributes = " ".join(f'drone-dji:{key}="{value}"' for key, value in fields.items())
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description rdf:about="DJI Meta Data" xmlns:drone-dji="http://www.dji.com/drone-dji/1.0/" '
        f"{attributes}/></rdf:RDF></x:xmpmeta>"
    ).encode()


def drone_jpeg(
    pixels: np.ndarray,
    lat: float,
    lon: float,
    xmp: dict[str, float | str] | None,
    focal_mm: float | None = None,
    sensor_width_mm: float | None = None,
    focal_35mm: int | None = None,
    orientation: int = 1,
) -> bytes:
    """`pixels` (BGR) as a JPEG with EXIF GPS and lens data and, when given, DJI XMP `fields`."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif.get_ifd(GPS_IFD).update({1: "N", 2: _dms(lat), 3: "E", 4: _dms(lon), 5: 0, 6: IFDRational(15000, 100)})
    details = exif.get_ifd(EXIF_IFD)
    details[0x9003] = "2024:05:17 09:41:07"
    if focal_mm is not None:
        details[0x920A] = IFDRational(round(focal_mm * 100), 100)
    if sensor_width_mm is not None:  # FocalPlaneXResolution in pixels per centimetre
        details[0xA20E] = IFDRational(round(pixels.shape[1] / (sensor_width_mm / 10) * 1000), 1000)
        details[0xA210] = 3
    if focal_35mm is not None:
        details[0xA405] = focal_35mm
    buffer = io.BytesIO()
    image = Image.fromarray(np.ascontiguousarray(pixels[:, :, ::-1]))
    image.save(buffer, "JPEG", quality=92, exif=exif, **({"xmp": dji_xmp(**xmp)} if xmp else {}))
    return buffer.getvalue()


def geotiff(
    path: Path,
    pixels: np.ndarray,
    epsg: int,
    geographic: bool = False,
    pixel_is_point: bool = False,
    tiepoint: tuple[float, float] | None = None,
    scale: tuple[float, float] | None = None,
    matrix: list[float] | None = None,
) -> Path:
    """Write `pixels` (BGR) as an RGB GeoTIFF with EPSG `epsg` and a tie point + scale or a 4x4 matrix."""
    keys = [1, 1, 0, 3, 1024, 0, 1, 2 if geographic else 1, 1025, 0, 1, 2 if pixel_is_point else 1]
    keys += [2048 if geographic else 3072, 0, 1, epsg]
    tags = [(34735, "H", len(keys), keys, True)]
    if matrix is not None:
        tags.append((34264, "d", 16, matrix, True))
    else:
        assert tiepoint is not None and scale is not None
        tags.append((33550, "d", 3, (scale[0], scale[1], 0.0), True))
        tags.append((33922, "d", 6, (0.0, 0.0, 0.0, tiepoint[0], tiepoint[1], 0.0), True))
    tifffile.imwrite(path, np.ascontiguousarray(pixels[:, :, ::-1]), photometric="rgb", extratags=tags)
    return path
