"""Open untrusted image bytes safely, and read where and when the photo was taken.

Uploads come from phones, drones and other portals, so every way a file can be wrong gets its
own plain reason (`ImageError`), checked before the expensive step it protects: the byte limit
before parsing, the pixel limit from the header before decoding (decompression bombs), and a full
decode so a truncated JPEG fails here rather than giving the model half a grey picture. EXIF is
best effort: a photo with broken EXIF is still a photo, so bad GPS becomes a warning, not a failure.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError

Image.MAX_IMAGE_PIXELS = None  # our own limit below applies, with a clearer message
pillow_heif.register_heif_opener()  # phones' HEIC photos open like any other

TRAINING_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
"""Image files the training tools (OpenCV, Ultralytics) read; HEIC is not among them."""
IMAGE_SUFFIXES = TRAINING_SUFFIXES | {".heic", ".heif"}
"""File suffixes taken for photos when walking folders (case-insensitive)."""
DEFAULT_MAX_PIXELS = 120_000_000
MIN_SIDE = 16
"""Fewer pixels than this on a side is no photo of a scene: letterboxed, it is a smear the model guesses on."""
WIDE_GREY_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})
"""Greyscale of more than 8 bits (16-bit PNG, 32-bit int or float TIFF), which Pillow's RGB conversion clips."""
DEFAULT_MAX_BYTES = 200 * 1024 * 1024
GPS_IFD = 0x8825
EXIF_IFD = 0x8769
DATETIME_ORIGINAL = 0x9003
DATETIME = 0x0132
GEOTIFF_TAGS = frozenset({33922, 34264, 34735})
"""ModelTiepoint, ModelTransformation, GeoKeyDirectory: the tags that place a TIFF on the ground."""
MAKE = 0x010F
ORIENTATION = 0x0112
DRONE_XMP_MARKS = (b"RelativeAltitude", b"drone-")
"""What a drone writes into XMP and a phone does not: DJI's `drone-dji:` fields, the height above take-off."""
DRONE_MAKERS = ("DJI", "AUTEL", "PARROT", "SKYDIO", "YUNEEC")
"""EXIF `Make` of drone cameras: a frame whose XMP was stripped on the way still says it flew."""


class ImageError(ValueError):
    """The file cannot be used as a photo; the message says why, in words a user understands."""


@dataclass
class LoadedImage:
    pixels: np.ndarray
    """BGR, uint8, EXIF orientation applied (what a person sees)."""
    width: int
    height: int
    sha256: str
    gps: dict | None = None
    captured_at: datetime | None = None
    warnings: list[str] = field(default_factory=list)
    aerial: bool | None = None
    """What the file says (`says_aerial`): from the air, from the ground, or nothing. Decides `tile=auto`."""


def says_aerial(image: Image.Image) -> bool | None:
    """Whether the file says it was taken from the air (True), by a camera on the ground (False), or neither (None).

    A phone photo of 12 to 200 MP is as large as a drone frame (50 MP sensors save 8192x6144 at
    full resolution), but an inspector stands metres from the bin; its pixel count alone says
    nothing about how small the problems in it are. So drone XMP, GeoTIFF tags or a drone maker
    say aerial; any other camera's EXIF `Make` says ground; a file with neither (an orthomosaic
    exported without metadata) leaves it to its size (model/tiling.py).
    """
    xmp = image.info.get("xmp") or b""
    if isinstance(xmp, str):
        xmp = xmp.encode()
    if any(mark in xmp for mark in DRONE_XMP_MARKS):
        return True
    tags = getattr(image, "tag_v2", None)
    if tags is not None and GEOTIFF_TAGS & set(tags.keys()):
        return True
    try:
        make = str(image.getexif().get(MAKE, "")).strip("\x00 ").upper()
    except Exception:  # unreadable EXIF says nothing
        return None
    if not make:
        return None
    return any(make.startswith(maker) for maker in DRONE_MAKERS)


def _ratio(value: object) -> float:
    if isinstance(value, tuple) and len(value) == 2:
        return float(value[0]) / float(value[1])
    return float(value)


def _degrees(parts: object, ref: object, positive: str) -> float:
    d, m, s = (_ratio(p) for p in parts)
    value = d + m / 60 + s / 3600
    return value if str(ref).strip().upper() in (positive, "") else -value


def read_gps(exif: Image.Exif) -> dict | None:
    """Latitude, longitude (WGS84 degrees) and altitude (m) from EXIF, or None when absent."""
    gps = exif.get_ifd(GPS_IFD)
    if not gps or 2 not in gps or 4 not in gps:
        return None
    lat = _degrees(gps[2], gps.get(1, "N"), "N")
    lon = _degrees(gps[4], gps.get(3, "E"), "E")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        raise ValueError(f"GPS position out of range ({lat:.5f}, {lon:.5f})")
    result = {"lat": round(lat, 7), "lon": round(lon, 7), "alt": None}
    if 6 in gps:
        altitude = _ratio(gps[6])
        result["alt"] = round(-altitude if gps.get(5) in (1, b"\x01") else altitude, 2)
    return result


def read_capture_time(exif: Image.Exif) -> datetime | None:
    raw = exif.get_ifd(EXIF_IFD).get(DATETIME_ORIGINAL) or exif.get(DATETIME)
    if not raw:
        return None
    return datetime.strptime(str(raw).strip("\x00 "), "%Y:%m:%d %H:%M:%S")


def _rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB of any mode, scaling wide greyscale to 0-255 where Pillow would clip it to white or black."""
    if image.mode not in WIDE_GREY_MODES:
        return image.convert("RGB")
    values = np.asarray(image, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    if image.mode == "F" and low >= 0 and high <= 1:
        top = 1.0  # float images in 0-1, the usual convention
    elif image.mode != "F" and low >= 0 and high <= 255:
        top = 255.0
    elif image.mode != "F" and low >= 0 and high <= 65535:
        top = 65535.0  # 16-bit samples, whatever container Pillow chose
    else:  # an unknown range (elevation, raw sensor counts): stretch what is there
        values, top = values - low, max(high - low, 1e-12)
    grey = np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)
    return Image.fromarray(grey, "L").convert("RGB")


LeastSize = Callable[[int, int, "bool | None"], "tuple[int, int] | None"]
"""Given a photo's stored width, height and what it says about flying (`says_aerial`), the fewest pixels
(width, height) its user needs, or None for all of them: `load_image`'s `least_size`."""


def load_image(
    data: bytes,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    least_size: LeastSize | None = None,
) -> LoadedImage:
    """The photo as the model and a person see it; `ImageError` says why not, without naming the file.

    The caller names the file in its own report (the scan's `image`, the API's `file`).

    `least_size`: a JPEG is decoded at the smallest of libjpeg's scales (1/2, 1/4, 1/8) that still
    covers the size it returns (Pillow's `draft`), which is a few times faster for a phone photo
    the network sees at 416 px. `width` and `height` stay the stored photo's; only `pixels` is
    smaller, and boxes found on them map back with `Detections.at_size` (model/tiling.py's `sizes`).
    """
    if not data:
        raise ImageError("empty file (0 bytes)")
    if len(data) > max_bytes:
        raise ImageError(f"{len(data):,} bytes is more than the limit of {max_bytes:,}")
    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, ImportError):
        # ImportError: Ultralytics, once imported, patches Image.open to load a HEIF plugin on unknown data
        raise ImageError("not an image (no known image format)") from None
    except Exception as exc:  # Pillow raises many types on hostile headers
        raise ImageError(f"unreadable image header ({exc})") from None
    width, height = image.size
    if width * height > max_pixels:
        raise ImageError(f"{width}x{height} is {width * height:,} pixels, more than the limit of {max_pixels:,}")
    if min(width, height) < MIN_SIDE:
        raise ImageError(f"{width}x{height} is too small to inspect (at least {MIN_SIDE} pixels a side)")
    aerial = says_aerial(image)
    need = least_size(width, height, aerial) if least_size is not None and image.format == "JPEG" else None
    try:
        if need is not None:
            image.draft(image.mode, need)
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
    except Exception as exc:
        raise ImageError(f"truncated or corrupt image data ({exc})") from None
    stored = (width, height)
    loaded_warnings: list[str] = []
    gps = captured_at = None
    try:
        exif = image.getexif()
    except Exception as exc:
        exif = None
        loaded_warnings.append(f"EXIF unreadable, ignored ({exc})")
    if exif is not None:
        try:
            gps = read_gps(exif)
        except Exception as exc:
            loaded_warnings.append(f"GPS ignored: {exc}")
        try:
            captured_at = read_capture_time(exif)
        except Exception as exc:
            loaded_warnings.append(f"capture time ignored: {exc}")
    try:
        upright = ImageOps.exif_transpose(image)
    except Exception as exc:
        upright = image
        loaded_warnings.append(f"EXIF orientation ignored ({exc})")
    pixels = np.asarray(_rgb(upright))[:, :, ::-1].copy()
    sha256 = hashlib.sha256(data).hexdigest()
    width, height = pixels.shape[1], pixels.shape[0]
    if image.size != stored:  # decoded reduced: the photo's own size, turned upright as its pixels were
        width, height = stored[::-1] if (height > width) != (stored[1] > stored[0]) else stored
    return LoadedImage(pixels, width, height, sha256, gps, captured_at, loaded_warnings, aerial)


def path_text(path: str | os.PathLike[str]) -> str:
    """`path` as text a UTF-8 output can hold: its bytes decoded as UTF-8, other bytes as `\\xNN`.

    Linux file names are bytes; Python keeps the bytes that are not UTF-8 as lone surrogates,
    which a strict UTF-8 stream refuses, so one such name would stop the whole scan. Valid names
    are unchanged, the text is idempotent (the manifest and the writers may both apply it) and a
    person can still read and find the file (`b\\xff.jpg` is the file named b, byte 0xFF, .jpg).
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def path_from_text(text: str) -> Path:
    """The file `path_text` wrote as `text`: each `\\xNN` back to its byte (for names that were not UTF-8)."""
    raw = re.sub(rb"\\x([0-9a-f]{2})", lambda m: bytes([int(m.group(1), 16)]), text.encode("utf-8"))
    return Path(os.fsdecode(raw))


def upright_size(data: bytes) -> tuple[int, int]:
    """(width, height) as a person sees the photo (EXIF rotation applied), from its header alone.

    For checking that a file is the photo a record describes without decoding its pixels.
    """
    try:
        image = Image.open(io.BytesIO(data))
        turned = image.getexif().get(ORIENTATION) in (5, 6, 7, 8)
    except Exception as exc:  # Pillow raises many types on files that are not images
        raise ImageError(f"not an image ({exc})") from None
    width, height = image.size
    return (height, width) if turned else (width, height)


def as_training_file(data: bytes) -> bytes:
    """The photo as a file the training tools read: HEIC (or any ISO media file) becomes a JPEG.

    The JPEG holds the upright pixels, which is what reviewed boxes are drawn on; a format
    OpenCV reads is returned as it is.
    """
    if data[4:8] != b"ftyp":
        return data
    pixels = load_image(data, max_pixels=DEFAULT_MAX_PIXELS, max_bytes=max(DEFAULT_MAX_BYTES, len(data))).pixels
    buffer = io.BytesIO()
    Image.fromarray(pixels[:, :, ::-1]).save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def load_image_file(
    path: Path,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_BYTES,
    least_size: LeastSize | None = None,
) -> LoadedImage:
    size = path.stat().st_size
    if size > max_bytes:
        raise ImageError(f"{size:,} bytes is more than the limit of {max_bytes:,}")
    return load_image(path.read_bytes(), max_pixels, max_bytes, least_size)
