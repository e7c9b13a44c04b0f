"""Ground positions from real drone metadata and GeoTIFF files, written here, against known answers.

Drone photos: a camera 100 m above flat ground with a 10 mm lens on a 13.2 mm wide sensor, in a
1000 px wide frame, sees 0.132 m per pixel straight down (100 / (10 * 1000 / 13.2)). So a box
300 px right of the centre is 39.6 m to the camera's right: east when the top of the frame
faces north, south when it faces east. Distances and bearings are checked with pyproj's
geodesic (not the code under test's projection).

GeoTIFFs: with a geographic (EPSG:4326) tie point and pixel size, the answer is plain arithmetic;
in UTM the easting 500 000 lies on the zone's central meridian, so its longitude is exact and its
latitude is where the meridian arc (northing / 0.9996) ends.
"""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from drone_scenes import background, drone_jpeg, geotiff, paste, surest_fire
from pyproj import Geod

from model.georef import (
    ASSUMED_PITCH_ERROR_DEG,
    GNSS_ERROR_M,
    PITCH_ERROR_DEG,
    RTK_ERROR_M,
    CameraView,
    Orthomosaic,
    read_georeference,
)
from model.registry import promoted_model
from model.runtime import Detector

LAT, LON = 30.2600000, 120.1500000
GEOD = Geod(ellps="WGS84")
GSD = 100 / (10 * 1000 / 13.2)
DJI = {
    "RelativeAltitude": "+100.00",
    "AbsoluteAltitude": "+150.00",
    "GimbalYawDegree": "+0.00",
    "GimbalPitchDegree": "-90.00",
    "FlightYawDegree": "+0.00",
}


def photo(tmp_path: Path, name: str = "DJI_0001.JPG", width: int = 1000, height: int = 750, **kwargs: object) -> Path:
    """A real street photo, upscaled to `width` x `height`, saved with drone metadata (`drone_jpeg` arguments)."""
    pixels = background(width, height)
    arguments = {"xmp": DJI, "focal_mm": 10.0, "sensor_width_mm": 13.2} | kwargs
    path = tmp_path / name
    path.write_bytes(drone_jpeg(pixels, LAT, LON, **arguments))  # type: ignore[arg-type]
    return path


def camera(path: Path) -> CameraView:
    found, warnings = read_georeference(path)
    assert warnings == [] and isinstance(found, CameraView), warnings
    return found


def bearing_and_distance(lat: float, lon: float) -> tuple[float, float]:
    azimuth, _, distance = GEOD.inv(LON, LAT, lon, lat)
    return azimuth % 360, distance


def box_at(dx: float, dy: float, width: int = 1000, height: int = 750) -> tuple[float, float, float, float]:
    """A 20 px box centred `dx`, `dy` pixels from the image centre."""
    cx, cy = width / 2 + dx, height / 2 + dy
    return (cx - 10, cy - 10, cx + 10, cy + 10)


def test_nadir_photo_facing_north_places_boxes_by_ground_sample_distance(tmp_path: Path) -> None:
    view = camera(photo(tmp_path))
    assert view.focal_px == pytest.approx(10 * 1000 / 13.2, rel=1e-4)
    centre = view.locate(box_at(0, 0))
    assert bearing_and_distance(centre.lat, centre.lon)[1] < 0.01
    expected = {(300, 0): (90, 300 * GSD), (0, -200): (0, 200 * GSD), (-300, 0): (270, 300 * GSD)}
    for (dx, dy), (bearing, metres) in (expected | {(0, 150): (180, 150 * GSD)}).items():
        found = view.locate(box_at(dx, dy))
        assert bearing_and_distance(found.lat, found.lon) == pytest.approx((bearing, metres), abs=0.05)
    # straight down, GNSS and tilt alone: sqrt(3^2 + (100 m * tan 2 deg)^2)
    assert centre.error_m == pytest.approx(math.hypot(GNSS_ERROR_M, 100 * math.radians(PITCH_ERROR_DEG)), rel=1e-3)
    assert view.locate(box_at(400, 300)).error_m > centre.error_m


def test_heading_and_tilt_turn_and_push_the_ground_point(tmp_path: Path) -> None:
    east = camera(photo(tmp_path, xmp=DJI | {"GimbalYawDegree": "+90.0"}))
    found = east.locate(box_at(300, 0))  # the right of a frame facing east is south
    assert bearing_and_distance(found.lat, found.lon) == pytest.approx((180, 300 * GSD), abs=0.05)
    found = east.locate(box_at(0, -200))  # up the frame is straight ahead: east
    assert bearing_and_distance(found.lat, found.lon) == pytest.approx((90, 200 * GSD), abs=0.05)

    forward = camera(photo(tmp_path, xmp=DJI | {"GimbalPitchDegree": "-60.0"}))
    found = forward.locate(box_at(0, 0))  # 30 degrees off nadir, facing north
    assert bearing_and_distance(found.lat, found.lon) == pytest.approx((0, 100 * math.tan(math.radians(30))), abs=0.05)
    # Near the top edge the ray is 30 deg + atan(374 / f) off nadir; the top corners lie that far north and
    # 500 px east or west, scaled by how far down the corner's ray points (f cos 30 - 375 sin 30, in pixels).
    found = forward.locate(box_at(0, -374))
    far = 100 * math.tan(math.radians(30) + math.atan(374 / forward.focal_px))
    assert bearing_and_distance(found.lat, found.lon) == pytest.approx((0, far), abs=0.05)
    f, tilt = forward.focal_px, math.radians(30)
    down = f * math.cos(tilt) - 375 * math.sin(tilt)
    north, east = 100 * (f * math.sin(tilt) + 375 * math.cos(tilt)) / down, 100 * 500 / down
    ring = forward.footprint()
    assert ring is not None
    top_left, top_right = (bearing_and_distance(lat, lon) for lon, lat in ring[:2])
    bearing = math.degrees(math.atan2(east, north))
    assert top_left == pytest.approx((360 - bearing, math.hypot(north, east)), abs=0.05)
    assert top_right == pytest.approx((bearing, math.hypot(north, east)), abs=0.05)
    sky = camera(photo(tmp_path, xmp=DJI | {"GimbalPitchDegree": "-10.0"}))
    assert sky.locate(box_at(0, -350)) is None and sky.footprint() is None, "above the horizon is never ground"


def test_footprint_and_box_polygon_are_closed_rings_on_the_ground(tmp_path: Path) -> None:
    view = camera(photo(tmp_path))
    ring = view.footprint()
    assert ring is not None and len(ring) == 5 and ring[0] == ring[-1]
    corners = [bearing_and_distance(lat, lon) for lon, lat in ring[:4]]
    angle, reach = math.degrees(math.atan2(500, 375)), math.hypot(500, 375) * GSD
    expected = [360 - angle, angle, 180 - angle, 180 + angle]  # top left, top right, bottom right, bottom left
    for found, bearing in zip(corners, expected, strict=True):
        assert found == pytest.approx((bearing, reach), abs=0.05)
    polygon = view.locate((500, 375, 600, 425)).polygon
    assert polygon is not None
    (lon1, lat1), (lon2, lat2) = polygon[0], polygon[2]
    assert GEOD.inv(lon1, lat1, lon2, lat2)[2] == pytest.approx(math.hypot(100, 50) * GSD, abs=0.02)


def test_other_lens_records_give_the_same_focal_length_in_pixels(tmp_path: Path) -> None:
    # 24 mm equivalent: defined on the 43.27 mm full-frame diagonal, so f = 24 * diagonal_px / 43.27
    by_35mm = camera(photo(tmp_path, focal_mm=None, sensor_width_mm=None, focal_35mm=24))
    assert by_35mm.focal_px == pytest.approx(24 * math.hypot(1000, 750) / math.hypot(36, 24), rel=1e-4)
    # DJI's calibrated focal length is in pixels of the full sensor image; this copy is 1000 of 5472 px wide
    calibrated = camera(photo(tmp_path, xmp=DJI | {"CalibratedFocalLength": "3666.67"}))
    assert calibrated.focal_px == pytest.approx(3666.67, rel=1e-4), "without ExifImageWidth no rescaling"
    rtk = camera(photo(tmp_path, xmp=DJI | {"RtkFlag": "50"}))
    assert rtk.gnss_error_m == RTK_ERROR_M
    no_pitch = {key: value for key, value in DJI.items() if key != "GimbalPitchDegree"}
    assumed = camera(photo(tmp_path, xmp=no_pitch))
    assert not assumed.pitch_known and assumed.pitch_deg == -90
    assert assumed.locate(box_at(0, 0)).error_m == pytest.approx(
        math.hypot(GNSS_ERROR_M, 100 * math.radians(ASSUMED_PITCH_ERROR_DEG)), rel=1e-3
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"xmp": {k: v for k, v in DJI.items() if k != "RelativeAltitude"}}, "no height above ground"),
        ({"xmp": {"RelativeAltitude": "+100"}}, "no heading"),
        ({"focal_mm": None, "sensor_width_mm": None}, "no focal length"),
        ({"orientation": 6}, "EXIF orientation 6"),
    ],
)
def test_drone_photos_missing_what_is_needed_get_no_position_and_say_why(
    tmp_path: Path, change: dict, reason: str
) -> None:
    found, warnings = read_georeference(photo(tmp_path, **change))
    assert found is None and len(warnings) == 1 and reason in warnings[0]


def test_a_plain_photo_has_no_georeference_and_no_warning(tmp_path: Path) -> None:
    found, warnings = read_georeference(photo(tmp_path, xmp=None))
    assert (found, warnings) == (None, [])
    plain = tmp_path / "plain.tif"
    cv2.imwrite(str(plain), background(300, 200))
    assert read_georeference(plain) == (None, [])


def test_geographic_geotiff_places_pixels_by_its_tie_point_and_pixel_size(tmp_path: Path) -> None:
    degrees = {"geographic": True, "tiepoint": (120.0, 30.0), "scale": (1e-5, 1e-5)}
    path = geotiff(tmp_path / "ortho.tif", background(640, 480), 4326, **degrees)
    found, warnings = read_georeference(path)
    assert warnings == [] and isinstance(found, Orthomosaic)
    position = found.locate((100, 200, 120, 260))
    assert (position.lon, position.lat) == pytest.approx((120.0011, 29.9977), abs=1e-9)
    corners = [[120.001, 29.998], [120.0012, 29.998], [120.0012, 29.9974], [120.001, 29.9974]]
    assert position.polygon == [*corners, corners[0]]
    pixel_x = GEOD.inv(120.0011, 29.9977, 120.00111, 29.9977)[2]
    pixel_y = GEOD.inv(120.0011, 29.9977, 120.0011, 29.99769)[2]  # a degree of latitude is longer here
    assert position.error_m == pytest.approx(2 * max(pixel_x, pixel_y), rel=0.001)
    assert found.footprint()[2] == pytest.approx([120.0064, 29.9952])

    centres = geotiff(tmp_path / "points.tif", background(64, 48), 4326, pixel_is_point=True, **degrees)
    shifted, _ = read_georeference(centres)
    corner = shifted.locate((0, 0, 0, 0))  # the tie point names pixel (0, 0)'s centre: its corner is half a pixel off
    assert (corner.lon, corner.lat) == pytest.approx((120.0 - 0.5e-5, 30.0 + 0.5e-5), abs=1e-10)


def test_utm_geotiff_is_converted_to_wgs84(tmp_path: Path) -> None:
    northing = 3_300_000.0
    tiepoint, scale = (499_990.0, northing), (0.05, 0.05)
    path = geotiff(tmp_path / "utm.tif", background(400, 300), 32650, tiepoint=tiepoint, scale=scale)
    found, _ = read_georeference(path)
    position = found.locate((190, 0, 210, 0))  # pixel column 200 is easting 500 000: the central meridian, 117 E
    assert position.lon == pytest.approx(117.0, abs=1e-9)
    assert GEOD.inv(117.0, 0.0, 117.0, position.lat)[2] == pytest.approx(northing / 0.9996, abs=0.01)
    matrix = [0.05, 0.0, 0.0, 499_990.0, 0.0, -0.05, 0.0, northing, 0, 0, 0, 0, 0, 0, 0, 1.0]
    same = geotiff(tmp_path / "matrix.tif", background(400, 300), 32650, matrix=matrix)
    assert read_georeference(same)[0].locate((190, 0, 210, 0)) == position


def test_geotiff_without_a_known_crs_gets_no_position(tmp_path: Path) -> None:
    path = geotiff(tmp_path / "custom.tif", background(64, 48), 32767, tiepoint=(0.0, 0.0), scale=(1.0, 1.0))
    found, warnings = read_georeference(path)
    assert found is None and "no EPSG coordinate system" in warnings[0]


def test_scan_writes_ground_positions_in_every_format(tmp_path: Path) -> None:
    """A drone frame (5 x the model input) with a real fire pasted into it, scanned with the shipped model."""
    detector = Detector.load(promoted_model())
    pixels = background(2080, 1560)
    pasted = paste(pixels, surest_fire(detector), 200, 1400, 300)
    folder = tmp_path / "flight"
    folder.mkdir()
    xmp = DJI | {"RelativeAltitude": "+60.0", "GimbalYawDegree": "+45.0"}
    (folder / "DJI_0042.JPG").write_bytes(drone_jpeg(pixels, LAT, LON, xmp, focal_mm=8.8, sensor_width_mm=13.2))
    outputs = {}
    for kind in ("jsonl", "csv", "geojson"):
        out = tmp_path / f"scan.{kind}"
        command = [sys.executable, "-m", "inference_api.cli", "scan", str(folder), "--format", kind, "--out", str(out)]
        completed = subprocess.run([*command, "--no-progress"], capture_output=True, text=True, timeout=300)
        assert completed.returncode == 0, completed.stderr
        outputs[kind] = out.read_text(encoding="utf-8")
    (record,) = [json.loads(line) for line in outputs["jsonl"].splitlines()]
    assert record["georef"]["method"] == "camera" and len(record["georef"]["footprint"]) == 5
    x1, y1, x2, y2 = pasted
    fire = [
        p
        for p in record["problems"]
        if p["type"] == "burning" and p["box"][0] < x2 and p["box"][2] > x1 and p["box"][1] < y2 and p["box"][3] > y1
    ]
    assert len(fire) == 1 and fire[0]["position"] is not None
    # expected by hand: 60 m up, f = 8.8 * 2080 / 13.2 px; the frame's right is south-east when facing north-east
    gsd = 60 / (8.8 * 2080 / 13.2)
    cx, cy = (fire[0]["box"][0] + fire[0]["box"][2]) / 2 - 1040, (fire[0]["box"][1] + fire[0]["box"][3]) / 2 - 780
    bearing = (45 + math.degrees(math.atan2(cx, -cy))) % 360
    position = fire[0]["position"]
    assert bearing_and_distance(position["lat"], position["lon"]) == pytest.approx(
        (bearing, math.hypot(cx, cy) * gsd), abs=0.05
    )
    assert all(p["position"] is not None for p in record["problems"])
    rows = list(csv.DictReader(io.StringIO(outputs["csv"])))
    assert [float(row["ground_lat"]) for row in rows] == [p["position"]["lat"] for p in record["problems"]]
    assert [float(row["ground_error_m"]) for row in rows] == [p["position"]["error_m"] for p in record["problems"]]
    features = json.loads(outputs["geojson"])["features"]
    assert len(features) == len(record["problems"])
    for feature, problem in zip(features, record["problems"], strict=True):
        assert feature["geometry"] == {"type": "Polygon", "coordinates": [problem["position"]["polygon"]]}
        assert feature["properties"]["located_by"] == "camera"
        assert feature["properties"]["error_m"] == problem["position"]["error_m"]
    assert np.isfinite([p["position"]["error_m"] for p in record["problems"]]).all()
