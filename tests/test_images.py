"""`load_image` on the ways real uploads go wrong, and on the EXIF a phone or drone writes.

Every hostile file is built here from real bytes (a shared-dataset JPEG, a hand-assembled PNG),
and each test checks the specific reason given, so a check that silently stops working (or a
file that now gets through) fails the test rather than some later stage.
"""

from __future__ import annotations

import io
import struct
import zlib
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from model.images import EXIF_IFD, GPS_IFD, ImageError, as_training_file, load_image, load_image_file

DATETIME_ORIGINAL = 0x9003
ORIENTATION = 0x0112


@pytest.fixture(scope="module")
def real_jpeg(shared_datasets: Path) -> bytes:
    return next((shared_datasets / "garbage-cn" / "valid" / "images").glob("*.jpg")).read_bytes()


def jpeg_with_exif(exif: Image.Exif, size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (40, 120, 200)).save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def test_real_photo_loads_as_bgr(real_jpeg: bytes) -> None:
    loaded = load_image(real_jpeg)
    assert loaded.pixels.dtype == np.uint8
    assert loaded.pixels.shape == (loaded.height, loaded.width, 3) == (480, 480, 3)
    assert loaded.gps is None and loaded.captured_at is None and loaded.warnings == []


def heic_of(jpeg: bytes, exif: Image.Exif | None = None) -> bytes:
    """The photo re-encoded as an iPhone would save it: HEIC, with EXIF."""
    buffer = io.BytesIO()
    Image.open(io.BytesIO(jpeg)).convert("RGB").save(buffer, "HEIF", quality=90, exif=(exif or Image.Exif()).tobytes())
    return buffer.getvalue()


def test_heic_photos_load_with_their_pixels_and_exif(real_jpeg: bytes) -> None:
    exif = Image.Exif()
    exif[0x010F] = "Apple"
    exif[GPS_IFD] = {1: "N", 2: (30.0, 15.0, 36.0), 3: "E", 4: (120.0, 9.0, 0.36)}
    heic = heic_of(real_jpeg, exif)
    assert heic[4:12] == b"ftypheic"
    loaded, reference = load_image(heic), load_image(real_jpeg)
    assert loaded.pixels.shape == reference.pixels.shape
    assert np.abs(loaded.pixels.astype(int) - reference.pixels.astype(int)).mean() < 6, "the same photo, re-encoded"
    assert loaded.gps == {"lat": 30.26, "lon": 120.1501, "alt": None}
    assert loaded.aerial is False, "a phone named in EXIF is on the ground"


def test_training_files_are_heic_turned_jpeg_and_other_formats_untouched(real_jpeg: bytes) -> None:
    """Reviewed photos are exported for Ultralytics, which reads no HEIC: HEIC becomes a JPEG of the same pixels."""
    assert as_training_file(real_jpeg) is real_jpeg
    converted = as_training_file(heic_of(real_jpeg))
    assert converted[:3] == b"\xff\xd8\xff"
    decoded = cv2.imdecode(np.frombuffer(converted, np.uint8), cv2.IMREAD_COLOR)
    reference = load_image(real_jpeg).pixels
    assert decoded.shape == reference.shape
    assert np.abs(decoded.astype(int) - reference.astype(int)).mean() < 6


def test_zero_bytes_is_refused() -> None:
    with pytest.raises(ImageError, match=r"empty file \(0 bytes\)"):
        load_image(b"")


def test_text_renamed_jpg_is_refused(tmp_path: Path) -> None:
    fake = tmp_path / "notes.jpg"
    fake.write_text("meeting notes, not a photo\n")
    with pytest.raises(ImageError, match="not an image"):
        load_image_file(fake)


@pytest.mark.parametrize("reduced", [False, True], ids=["whole", "reduced"])
def test_truncated_jpeg_is_refused(real_jpeg: bytes, reduced: bool) -> None:
    """Decoded at 1/8 of its size, a JPEG is still read to its end, so half a file fails there too."""
    least = (lambda w, h, aerial: (w // 8, h // 8)) if reduced else None
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(real_jpeg[: len(real_jpeg) // 2], least_size=least)


def test_png_decompression_bomb_is_refused_from_its_header() -> None:
    """30000 x 30000 (900 Mpx) of 1-bit zeros: about 100 kB on disk, 900 MB if decoded to RGB."""
    side = 30_000
    row = b"\x00" * (1 + side // 8)  # filter byte + 1 bit per pixel
    deflate = zlib.compressobj(9)
    idat = b"".join(deflate.compress(row) for _ in range(side)) + deflate.flush()
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0))
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )
    assert len(bomb) < 1_000_000
    assert Image.open(io.BytesIO(bomb)).size == (side, side)  # a well-formed PNG, only too big
    with pytest.raises(ImageError, match=r"30000x30000 is 900,000,000 pixels, more than the limit"):
        load_image(bomb)


@pytest.mark.parametrize("size", [(1, 1), (15, 4000), (4000, 15)])
def test_images_too_small_to_inspect_are_refused(size: tuple[int, int]) -> None:
    """A 1x1 red pixel letterboxed to the model's input was once raised as burning at 0.89."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (220, 30, 20)).save(buffer, "PNG")
    with pytest.raises(ImageError, match=rf"{size[0]}x{size[1]} is too small to inspect \(at least 16 pixels"):
        load_image(buffer.getvalue())
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (220, 30, 20)).save(buffer, "PNG")
    assert load_image(buffer.getvalue()).width == 16


def encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def test_wide_greyscale_keeps_its_contrast() -> None:
    """16-bit PNG and float TIFF samples are scaled to 0-255; Pillow's own RGB conversion clips them flat."""
    ramp = np.linspace(0, 1, 64 * 64).reshape(64, 64)
    sixteen = Image.fromarray((ramp * 65535).astype(np.uint16))
    as_float = Image.fromarray(ramp.astype(np.float32), "F")
    for data in (encoded(sixteen, "PNG"), encoded(as_float, "TIFF")):
        pixels = load_image(data).pixels
        assert pixels.shape == (64, 64, 3)
        assert (pixels[..., 0] == pixels[..., 2]).all()
        np.testing.assert_allclose(pixels[..., 0].astype(float), np.rint(ramp * 255), atol=1)
    metres = Image.fromarray((ramp * 800 + 1200).astype(np.float32), "F")  # a height model, in metres
    stretched = load_image(encoded(metres, "TIFF")).pixels[..., 0]
    assert (stretched.min(), stretched.max()) == (0, 255)


def test_errors_do_not_name_the_file(real_jpeg: bytes, tmp_path: Path) -> None:
    """Every caller reports the file beside the reason; a name inside the reason appeared twice."""
    path = tmp_path / "half-a-photo.jpg"
    path.write_bytes(real_jpeg[: len(real_jpeg) // 2])
    with pytest.raises(ImageError) as caught:
        load_image_file(path)
    assert str(caught.value).startswith("truncated or corrupt image data")


def test_byte_limit_is_checked_before_reading(real_jpeg: bytes, tmp_path: Path) -> None:
    limit = len(real_jpeg) - 1
    with pytest.raises(ImageError, match="more than the limit"):
        load_image(real_jpeg, max_bytes=limit)
    path = tmp_path / "big.jpg"
    path.write_bytes(real_jpeg)
    with pytest.raises(ImageError, match=f"{len(real_jpeg):,} bytes is more than the limit of {limit:,}"):
        load_image_file(path, max_bytes=limit)
    assert load_image_file(path, max_bytes=len(real_jpeg)).width == 480


@pytest.mark.parametrize(
    ("refs", "expected"),
    [(("N", "E"), (30.26, 120.1501)), (("S", "W"), (-30.26, -120.1501))],
)
def test_exif_gps_and_capture_time_read_back_exactly(refs: tuple[str, str], expected: tuple[float, float]) -> None:
    exif = Image.Exif()
    exif[GPS_IFD] = {
        1: refs[0],
        2: (30.0, 15.0, 36.0),  # 30 deg 15' 36" = 30.26
        3: refs[1],
        4: (120.0, 9.0, 0.36),  # 120 deg 9' 0.36" = 120.1501
        5: b"\x00",  # above sea level
        6: 12.5,
    }
    exif[EXIF_IFD] = {DATETIME_ORIGINAL: "2024:05:17 09:41:07"}
    loaded = load_image(jpeg_with_exif(exif))
    assert loaded.warnings == []
    assert loaded.gps == {"lat": expected[0], "lon": expected[1], "alt": 12.5}
    assert loaded.captured_at == datetime(2024, 5, 17, 9, 41, 7)


def test_exif_orientation_is_applied() -> None:
    """Stored 40 wide x 20 high, red left half, blue right half; orientation 6 shows it turned 90 deg clockwise."""
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    buffer = io.BytesIO()
    stored.save(buffer, "PNG", exif=exif)
    loaded = load_image(buffer.getvalue())
    assert (loaded.width, loaded.height) == (20, 40)
    assert loaded.pixels.shape == (40, 20, 3)
    np.testing.assert_array_equal(loaded.pixels[:20].reshape(-1, 3), [[0, 0, 255]] * 400)  # BGR red on top
    np.testing.assert_array_equal(loaded.pixels[20:].reshape(-1, 3), [[255, 0, 0]] * 400)  # blue below


@pytest.mark.parametrize(
    ("gps", "reason"),
    [
        ({1: "N", 2: (95.0, 0.0, 0.0), 3: "E", 4: (120.0, 0.0, 0.0)}, "out of range"),
        ({1: "N", 2: (30.0, 15.0), 3: "E", 4: (120.0, 0.0, 0.0)}, "GPS ignored"),
    ],
    ids=["latitude-95", "two-part-latitude"],
)
def test_broken_gps_is_a_warning_not_a_failure(gps: dict, reason: str) -> None:
    exif = Image.Exif()
    exif[GPS_IFD] = gps
    exif[EXIF_IFD] = {DATETIME_ORIGINAL: "2024:05:17 09:41:07"}
    loaded = load_image(jpeg_with_exif(exif))
    assert loaded.gps is None
    assert loaded.captured_at == datetime(2024, 5, 17, 9, 41, 7)  # the rest of the EXIF still counts
    assert len(loaded.warnings) == 1 and loaded.warnings[0].startswith("GPS ignored")
    assert reason in loaded.warnings[0]
    assert loaded.pixels.shape == (48, 64, 3)


def test_aerial_is_what_the_file_says_about_flying(real_jpeg: bytes, tmp_path: Path) -> None:
    """Drone XMP, a drone maker or GeoTIFF tags say aerial; another camera's Make says ground; else nothing."""
    from drone_scenes import drone_jpeg, geotiff

    pixels = load_image(real_jpeg).pixels
    flying = drone_jpeg(pixels, 30.5, 114.3, {"RelativeAltitude": "+80.00", "GimbalPitchDegree": "-90.0"})
    on_foot = drone_jpeg(pixels, 30.5, 114.3, None)  # same EXIF GPS and lens data, no drone XMP
    assert load_image(flying).aerial is True
    assert load_image(on_foot).aerial is None and load_image(real_jpeg).aerial is None, "says nothing"
    ortho = geotiff(tmp_path / "ortho.tif", pixels, 32650, tiepoint=(500000.0, 3400000.0), scale=(0.05, 0.05))
    plain = tmp_path / "plain.tif"
    Image.fromarray(pixels[:, :, ::-1]).save(plain)
    assert load_image_file(ortho).aerial is True and load_image_file(plain).aerial is None
    for make, says in (("Xiaomi", False), ("HUAWEI\x00", False), ("DJI", True), ("  Autel Robotics", True)):
        exif = Image.Exif()
        exif[0x010F] = make
        assert load_image(jpeg_with_exif(exif)).aerial is says, make


def test_a_large_jpeg_decodes_reduced_to_what_is_asked_and_keeps_its_own_size(real_jpeg: bytes) -> None:
    """libjpeg's 1/4 scale of a 1920 x 1440 JPEG is 480 x 360: the smallest that covers 400 x 300. The
    reduced pixels are the photo shrunk (close to OpenCV's area resize of the full decode), and
    `least_size` is told the stored size and what the file says about flying."""
    full = cv2.resize(load_image(real_jpeg).pixels, (1920, 1440), interpolation=cv2.INTER_CUBIC)
    data = cv2.imencode(".jpg", full, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    asked = []
    loaded = load_image(data, least_size=lambda w, h, aerial: asked.append((w, h, aerial)) or (400, 300))
    assert asked == [(1920, 1440, None)]
    assert loaded.pixels.shape == (360, 480, 3) and (loaded.width, loaded.height) == (1920, 1440)
    shrunk = cv2.resize(load_image(data).pixels, (480, 360), interpolation=cv2.INTER_AREA)
    assert np.abs(loaded.pixels.astype(int) - shrunk).mean() < 3
    whole = load_image(data, least_size=lambda w, h, aerial: None)
    assert whole.pixels.shape == (1440, 1920, 3) and (whole.width, whole.height) == (1920, 1440)


def test_a_reduced_jpeg_turned_by_exif_keeps_its_upright_size_and_other_formats_decode_whole() -> None:
    """Stored 1600 x 800 with orientation 6: a person sees 800 x 1600, and so do its reduced pixels (200 x 400)."""
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    turned = load_image(jpeg_with_exif(exif, (1600, 800)), least_size=lambda w, h, aerial: (w // 4, h // 4))
    assert turned.pixels.shape == (400, 200, 3) and (turned.width, turned.height) == (800, 1600)
    png = encoded(Image.new("RGB", (1600, 800), (10, 20, 30)), "PNG")
    whole = load_image(png, least_size=lambda w, h, aerial: (w // 4, h // 4))
    assert whole.pixels.shape == (800, 1600, 3) and (whole.width, whole.height) == (1600, 800)
