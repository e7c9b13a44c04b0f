"""Where on the ground a box is: WGS84 positions for findings in drone photos and orthomosaics.

Two kinds of files carry a georeference, and each gets its own model:

- **Drone photos** (JPEG with EXIF and DJI XMP): GPS position, height above the take-off point
  (`RelativeAltitude`), gimbal yaw and pitch, and the focal length. `CameraView` casts a ray
  through a pixel with a pinhole camera (no lens distortion, gimbal roll taken as zero) and
  intersects it with flat ground at the take-off height. Without a height above ground or a
  heading there is no ground position: EXIF altitude is above sea level, not above the ground.
- **Orthomosaics** (GeoTIFF): an affine pixel-to-map transform and an EPSG coordinate system,
  converted to WGS84 with pyproj. Exact up to the mosaic's own accuracy, which the file does
  not record.

Every position states `error_m`, an estimate of how far the true spot may be (errors combined
in quadrature, each about two standard deviations): for photos GNSS (`GNSS_ERROR_M`, or
`RTK_ERROR_M` with an RTK fix, or the photo's own GPSHPositioningError), height (`HEIGHT_ERROR_M`:
barometer drift and ground that is not flat, growing with distance from the nadir point), yaw
(`YAW_ERROR_DEG`) and tilt (`PITCH_ERROR_DEG`, or `ASSUMED_PITCH_ERROR_DEG` when the photo does
not say where the gimbal pointed and straight down is assumed); for orthomosaics
`ORTHO_LOCALISATION_PX` ground pixels of box placement. A photo without a usable
georeference gets no position (`None`); its finding still counts.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from model.images import EXIF_IFD, GPS_IFD, read_gps

if TYPE_CHECKING:
    from pyproj import Geod, Transformer

GNSS_ERROR_M = 3.0
RTK_ERROR_M = 0.1
RTK_FIXED = 50
"""DJI `RtkFlag` value of a fixed RTK solution."""
HEIGHT_ERROR_M = 2.0
YAW_ERROR_DEG = 3.0
PITCH_ERROR_DEG = 2.0
ASSUMED_PITCH_ERROR_DEG = 5.0
ORTHO_LOCALISATION_PX = 2.0
FULL_FRAME_DIAGONAL_MM = math.hypot(36.0, 24.0)
"""35 mm-equivalent focal lengths are defined on this diagonal (CIPA DC-008)."""
FOCAL_LENGTH = 0x920A
FOCAL_LENGTH_35MM = 0xA405
FOCAL_PLANE_X_RESOLUTION = 0xA20E
FOCAL_PLANE_RESOLUTION_UNIT = 0xA210
EXIF_IMAGE_WIDTH = 0xA002
ORIENTATION = 0x0112
GPS_IMG_DIRECTION = 17
GPS_H_POSITIONING_ERROR = 31
MM_PER_UNIT = {2: 25.4, 3: 10.0, 4: 1.0, 5: 0.001}
"""FocalPlaneResolutionUnit: inch, centimetre, millimetre, micrometre."""
XMP_FIELD = re.compile(rb'drone-dji:(\w+)\s*=\s*"([^"]*)"|<drone-dji:(\w+)>([^<]*)</drone-dji:\3>')
GEOTIFF_SUFFIXES = frozenset({".tif", ".tiff"})
USER_DEFINED = 32767

Ring = list[list[float]]
"""A closed polygon ring of [lon, lat] pairs, first point repeated last (GeoJSON order)."""


class GeorefError(ValueError):
    """The file has georeferencing metadata, but it cannot be used; the message says what is missing."""


@dataclass(frozen=True)
class Position:
    """A finding's place on the ground in WGS84, with how far off it may be."""

    lat: float
    lon: float
    error_m: float
    polygon: Ring | None = None
    """The box's outline on the ground, when all four corners could be placed."""

    def as_dict(self) -> dict:
        return {
            "lat": round(self.lat, 7),
            "lon": round(self.lon, 7),
            "error_m": round(self.error_m, 1),
            "polygon": self.polygon,
        }


@lru_cache(maxsize=1)
def _geod() -> Geod:
    """pyproj is imported only once a georeference is used, so scanning plain photos does not load it."""
    from pyproj import Geod

    return Geod(ellps="WGS84")


@lru_cache(maxsize=32)
def _to_wgs84(epsg: int) -> Transformer:
    from pyproj import Transformer

    return Transformer.from_crs(epsg, 4326, always_xy=True)


def distance_m(a: dict, b: dict) -> float:
    """Metres between two positions ({"lat", "lon"} in WGS84), on the ellipsoid."""
    return float(_geod().inv(a["lon"], a["lat"], b["lon"], b["lat"])[2])


def _ring(points: list[tuple[float, float]]) -> Ring:
    ring = [[round(lon, 7), round(lat, 7)] for lon, lat in points]
    return [*ring, ring[0]]


def _corners(box: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    x1, y1, x2, y2 = box
    return [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]


@dataclass(frozen=True)
class CameraView:
    """A drone photo's pinhole camera over flat ground; pixels are those of the stored (upright) image."""

    lat: float
    lon: float
    height_m: float
    """Above the ground, taken as the take-off point's height (DJI `RelativeAltitude`)."""
    yaw_deg: float
    """Heading of the image's top edge, clockwise from north."""
    pitch_deg: float
    """Gimbal pitch: 0 looks at the horizon, -90 straight down."""
    pitch_known: bool
    focal_px: float
    cx: float
    cy: float
    width: int
    height: int
    gnss_error_m: float
    method: str = "camera"

    def _axes(self) -> np.ndarray:
        """Image right, image down and the optical axis as east-north-up unit vectors (rows)."""
        yaw, pitch = math.radians(self.yaw_deg), math.radians(self.pitch_deg)
        right = (math.cos(yaw), -math.sin(yaw), 0.0)
        down = (math.sin(pitch) * math.sin(yaw), math.sin(pitch) * math.cos(yaw), -math.cos(pitch))
        forward = (math.cos(pitch) * math.sin(yaw), math.cos(pitch) * math.cos(yaw), math.sin(pitch))
        return np.array([right, down, forward])

    def ground_offset(self, x: float, y: float) -> tuple[float, float] | None:
        """East and north metres from the point below the camera to where pixel (x, y) meets the ground."""
        ray = np.array([(x - self.cx) / self.focal_px, (y - self.cy) / self.focal_px, 1.0]) @ self._axes()
        if ray[2] >= -1e-6:  # at or above the horizon: never meets the ground
            return None
        reach = self.height_m / -ray[2]
        return float(ray[0] * reach), float(ray[1] * reach)

    def _place(self, x: float, y: float) -> tuple[float, float] | None:
        offset = self.ground_offset(x, y)
        if offset is None:
            return None
        east, north = offset
        lon, lat, _ = _geod().fwd(self.lon, self.lat, math.degrees(math.atan2(east, north)), math.hypot(east, north))
        return lon, lat

    def error_m(self, east: float, north: float) -> float:
        distance = math.hypot(east, north)
        off_nadir = math.atan2(distance, self.height_m)
        pitch_error = PITCH_ERROR_DEG if self.pitch_known else ASSUMED_PITCH_ERROR_DEG
        return math.sqrt(
            self.gnss_error_m**2
            + (HEIGHT_ERROR_M * distance / self.height_m) ** 2
            + (self.height_m * math.radians(pitch_error) / math.cos(off_nadir) ** 2) ** 2
            + (distance * math.radians(YAW_ERROR_DEG)) ** 2
        )

    def locate(self, box: tuple[float, float, float, float]) -> Position | None:
        """The box centre on the ground; None when it looks above the horizon."""
        centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        offset, placed = self.ground_offset(*centre), self._place(*centre)
        if offset is None or placed is None:
            return None
        corners = [self._place(x, y) for x, y in _corners(box)]
        polygon = _ring(corners) if all(corners) else None  # type: ignore[arg-type]
        return Position(placed[1], placed[0], self.error_m(*offset), polygon)

    def footprint(self) -> Ring | None:
        """The photo's outline on the ground; None when part of it is sky."""
        corners = [self._place(x, y) for x, y in _corners((0, 0, self.width, self.height))]
        return _ring(corners) if all(corners) else None  # type: ignore[arg-type]


@dataclass(frozen=True)
class Orthomosaic:
    """A GeoTIFF's affine pixel-to-map transform (x = a·col + b·row + c, y = d·col + e·row + f) and EPSG code."""

    transform: tuple[float, float, float, float, float, float]
    epsg: int
    width: int
    height: int
    method: str = "orthomosaic"

    def _place(self, x: float, y: float) -> tuple[float, float]:
        a, b, c, d, e, f = self.transform
        lon, lat = _to_wgs84(self.epsg).transform(a * x + b * y + c, d * x + e * y + f)
        return float(lon), float(lat)

    def pixel_size_m(self, x: float, y: float) -> float:
        """Ground size of one pixel at (x, y), in metres whatever the map units are."""
        (lon1, lat1), (lon2, lat2), (lon3, lat3) = (self._place(x, y), self._place(x + 1, y), self._place(x, y + 1))
        return max(_geod().inv(lon1, lat1, lon2, lat2)[2], _geod().inv(lon1, lat1, lon3, lat3)[2])

    def locate(self, box: tuple[float, float, float, float]) -> Position:
        centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        lon, lat = self._place(*centre)
        error = ORTHO_LOCALISATION_PX * self.pixel_size_m(*centre)
        return Position(lat, lon, error, _ring([self._place(x, y) for x, y in _corners(box)]))

    def footprint(self) -> Ring:
        return _ring([self._place(x, y) for x, y in _corners((0, 0, self.width, self.height))])


Georeference = CameraView | Orthomosaic


def _number(value: object) -> float:
    if isinstance(value, tuple) and len(value) == 2:
        return float(value[0]) / float(value[1])
    return float(value)  # type: ignore[arg-type]


def dji_xmp(xmp: bytes) -> dict[str, str]:
    """The `drone-dji:` fields of an XMP packet, written as attributes or as elements."""
    fields = {}
    for match in XMP_FIELD.finditer(xmp):
        key, value = (match.group(1), match.group(2)) if match.group(1) else (match.group(3), match.group(4))
        fields[key.decode("ascii")] = value.decode("utf-8", "replace").strip()
    return fields


def _focal_px(exif: dict, xmp: dict[str, str], width: int, height: int) -> float:
    """Focal length in pixels of this image: calibrated (DJI), from the sensor's pixel pitch, or 35 mm-equivalent."""
    full_width = _number(exif[EXIF_IMAGE_WIDTH]) if exif.get(EXIF_IMAGE_WIDTH) else width
    scale = width / full_width if full_width else 1.0
    if xmp.get("CalibratedFocalLength"):
        return float(xmp["CalibratedFocalLength"]) * scale
    focal_mm = _number(exif[FOCAL_LENGTH]) if exif.get(FOCAL_LENGTH) else 0.0
    resolution = _number(exif[FOCAL_PLANE_X_RESOLUTION]) if exif.get(FOCAL_PLANE_X_RESOLUTION) else 0.0
    unit_mm = MM_PER_UNIT.get(int(exif.get(FOCAL_PLANE_RESOLUTION_UNIT, 2)))
    if focal_mm > 0 and resolution > 0 and unit_mm:
        return focal_mm * resolution / unit_mm * scale
    if exif.get(FOCAL_LENGTH_35MM):
        return _number(exif[FOCAL_LENGTH_35MM]) * math.hypot(width, height) / FULL_FRAME_DIAGONAL_MM
    raise GeorefError("no focal length (EXIF FocalLength with FocalPlaneXResolution, or FocalLengthIn35mmFilm)")


def camera_view(image: Image.Image) -> CameraView | None:
    """The drone camera of a photo from its EXIF and DJI XMP; None for a photo without drone metadata.

    Raises `GeorefError` when drone metadata is there but not enough of it to place pixels.
    """
    xmp = dji_xmp(image.info.get("xmp") or b"")
    if not xmp:
        return None
    exif = image.getexif()
    orientation = exif.get(ORIENTATION, 1)
    if orientation != 1:
        raise GeorefError(f"EXIF orientation {orientation}: only photos stored upright (orientation 1) are placed")
    gps_ifd = exif.get_ifd(GPS_IFD)
    gps = read_gps(exif)
    if gps is None:
        raise GeorefError("no GPS position in EXIF")
    if not xmp.get("RelativeAltitude"):
        raise GeorefError("no height above ground (XMP RelativeAltitude)")
    height_m = float(xmp["RelativeAltitude"])
    if height_m <= 0:
        raise GeorefError(f"height above ground {height_m} m is not above the ground")
    yaw = xmp.get("GimbalYawDegree") or xmp.get("FlightYawDegree")
    if yaw is None and gps_ifd.get(GPS_IMG_DIRECTION) is None:
        raise GeorefError("no heading (XMP GimbalYawDegree or FlightYawDegree, or EXIF GPSImgDirection)")
    yaw_deg = float(yaw) if yaw is not None else _number(gps_ifd[GPS_IMG_DIRECTION])
    pitch = xmp.get("GimbalPitchDegree")
    width, height = image.size
    exif_details = dict(exif.get_ifd(EXIF_IFD))
    focal_px = _focal_px(exif_details, xmp, width, height)
    scale = width / _number(exif_details[EXIF_IMAGE_WIDTH]) if exif_details.get(EXIF_IMAGE_WIDTH) else 1.0
    cx = float(xmp["CalibratedOpticalCenterX"]) * scale if xmp.get("CalibratedOpticalCenterX") else width / 2
    cy = float(xmp["CalibratedOpticalCenterY"]) * scale if xmp.get("CalibratedOpticalCenterY") else height / 2
    if gps_ifd.get(GPS_H_POSITIONING_ERROR):
        gnss_error = _number(gps_ifd[GPS_H_POSITIONING_ERROR])
    else:
        gnss_error = RTK_ERROR_M if xmp.get("RtkFlag", "").strip() == str(RTK_FIXED) else GNSS_ERROR_M
    return CameraView(
        lat=gps["lat"],
        lon=gps["lon"],
        height_m=height_m,
        yaw_deg=yaw_deg,
        pitch_deg=float(pitch) if pitch is not None else -90.0,
        pitch_known=pitch is not None,
        focal_px=focal_px,
        cx=cx,
        cy=cy,
        width=width,
        height=height,
        gnss_error_m=gnss_error,
    )


def orthomosaic(path: Path) -> Orthomosaic | None:
    """The GeoTIFF georeference of `path`; None for a TIFF without one. Raises `GeorefError` if unusable."""
    import tifffile

    with tifffile.TiffFile(path) as tiff:
        if not tiff.is_geotiff:
            return None
        meta = tiff.geotiff_metadata or {}
        page = tiff.pages.first
        height, width = page.imagelength, page.imagewidth
    epsg = meta.get("ProjectedCSTypeGeoKey") or meta.get("GeographicTypeGeoKey")
    if epsg is None or int(epsg) == USER_DEFINED:
        raise GeorefError("the GeoTIFF names no EPSG coordinate system (user-defined systems are not supported)")
    if "ModelTransformation" in meta:
        m = np.asarray(meta["ModelTransformation"], dtype=float).reshape(-1)
        transform = (m[0], m[1], m[3], m[4], m[5], m[7])
    elif "ModelTiepoint" in meta and "ModelPixelScale" in meta:
        tie, scale = np.asarray(meta["ModelTiepoint"], float).reshape(-1), meta["ModelPixelScale"]
        if len(tie) != 6:
            raise GeorefError(f"{len(tie) // 6} tie points (ground control points) are not an affine transform")
        i, j, _, x, y, _ = tie
        transform = (scale[0], 0.0, x - i * scale[0], 0.0, -scale[1], y + j * scale[1])
    else:
        raise GeorefError("the GeoTIFF has neither ModelTransformation nor ModelTiepoint and ModelPixelScale")
    if int(meta.get("GTRasterTypeGeoKey", 1)) == 2:  # PixelIsPoint: the transform names pixel centres
        a, b, c, d, e, f = transform
        transform = (a, b, c - (a + b) / 2, d, e, f - (d + e) / 2)
    return Orthomosaic(tuple(float(v) for v in transform), int(epsg), width, height)  # type: ignore[arg-type]


def read_georeference(path: Path) -> tuple[Georeference | None, list[str]]:
    """The georeference of the photo or orthomosaic at `path`, and warnings about metadata that was unusable.

    Only the header is read (no pixels). A plain photo (no drone metadata, no GeoTIFF tags) has
    none and no warning.
    """
    try:
        if path.suffix.lower() in GEOTIFF_SUFFIXES:
            found = orthomosaic(path)
            if found is not None:
                return found, []
        with Image.open(path) as image:
            return camera_view(image), []
    except GeorefError as exc:
        return None, [f"no ground position: {exc}"]
    except Exception as exc:  # hostile or odd metadata must not stop a scan
        return None, [f"no ground position: unreadable georeference ({type(exc).__name__}: {exc})"]
