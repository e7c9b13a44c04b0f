"""Tiled inference on large images built from real photos, with the shipped model.

The scene is a 2496 x 1872 mosaic of real street photos (6 times the model's input) with a real
fire photo pasted small into it. Resized to 416 px the fire shrinks to a few dozen pixels and
the model misses it; in tiles it keeps its own size and is found, in original pixels. The tiny
test model is too weak to find anything at this scale, so these tests use model/envwatch-v1.onnx.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from drone_scenes import background, drone_jpeg, paste, surest_fire

from model.detections import Detections
from model.networks import fastest_runtime
from model.registry import promoted_model
from model.runtime import Detector
from model.tiling import (
    FULL_FRAME,
    TILE_OVERLAP,
    decode_size,
    detect_images,
    detect_pieces,
    merge_tiles,
    plan_tiles,
    should_tile,
    tile_starts,
)

WIDTH, HEIGHT = 2496, 1872
NAMES = ("overflowing_garbage", "exposed_garbage", "garbage_bin", "fire", "smoke")


def iou(a: np.ndarray | tuple, b: np.ndarray | tuple) -> float:
    inter = max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def overlapping(boxes: np.ndarray, region: tuple[float, ...]) -> np.ndarray:
    return (boxes[:, 0] < region[2]) & (boxes[:, 2] > region[0]) & (boxes[:, 1] < region[3]) & (boxes[:, 3] > region[1])


@pytest.fixture(scope="module")
def detector() -> Detector:
    return Detector.load(promoted_model())


@pytest.fixture(scope="module")
def fire(detector: Detector) -> Path:
    return surest_fire(detector)


@pytest.fixture(scope="module")
def scene(fire: Path) -> tuple[np.ndarray, tuple[float, ...]]:
    """The mosaic with the fire pasted 240 px wide inside one tile (so no seam cuts it), and its box."""
    image = background(WIDTH, HEIGHT)
    tiles = plan_tiles(WIDTH, HEIGHT, (416, 416))
    x, y = tiles[10][:2] + 100  # well inside tile 10: the overlap bands are about 120 px wide
    return image, paste(image, fire, 240, int(x), int(y))


def test_tiles_cover_the_image_at_full_size_with_the_overlap() -> None:
    tiles = plan_tiles(WIDTH, HEIGHT, (416, 416))
    assert ((tiles[:, 2] - tiles[:, 0]) == 416).all() and ((tiles[:, 3] - tiles[:, 1]) == 416).all()
    covered = np.zeros((HEIGHT, WIDTH), bool)
    for x1, y1, x2, y2 in tiles:
        covered[y1:y2, x1:x2] = True
    assert covered.all()
    for length in (WIDTH, HEIGHT, 417, 5472):
        starts = tile_starts(length, 416)
        assert starts[0] == 0 and starts[-1] == length - 416
        assert min(np.diff(starts)) > 0 and 416 - max(np.diff(starts)) >= TILE_OVERLAP * 416
    assert plan_tiles(300, 200, (416, 416)).tolist() == [[0, 0, 300, 200]]
    assert plan_tiles(1000, 300, (416, 416))[:, 3].tolist() == [300, 300, 300]


def test_auto_tiles_only_aerial_images_that_resizing_would_shrink_a_lot() -> None:
    size = (416, 416)
    assert not should_tile(480, 480, size, aerial=True) and not should_tile(1600, 1200, size, aerial=True)
    assert should_tile(WIDTH, HEIGHT, size, aerial=True) and should_tile(5472, 3648, size, aerial=True)
    assert not should_tile(4032, 3024, size) and not should_tile(8000, 6000, size), "phone photos stay whole"
    assert should_tile(9000, 6000, size), "50 MP and more that says nothing is taken for an orthomosaic"
    for width, height in ((8192, 6144), (12000, 9000), (16320, 12240)):  # 50, 108 and 200 MP phone modes
        assert not should_tile(width, height, size, aerial=False), "a camera that names itself is believed"
    assert should_tile(1600, 1200, size, "on") and not should_tile(5472, 3648, size, "off", aerial=True)
    assert not should_tile(400, 300, size, "on"), "an image that fits one tile is never tiled"
    with pytest.raises(ValueError, match="tile mode"):
        should_tile(WIDTH, HEIGHT, size, "always")  # type: ignore[arg-type]


def test_tiling_finds_a_small_fire_that_resizing_misses(
    detector: Detector, scene: tuple[np.ndarray, tuple[float, ...]]
) -> None:
    image, pasted = scene
    found = {
        mode: detector.problems(detect_images(detector, [image], mode=mode, aerial=[True])[0])
        for mode in ("off", "auto")
    }
    hits = {
        mode: [p for p in problems if p.type == "burning" and overlapping(np.array([p.box]), pasted)[0]]
        for mode, problems in found.items()
    }
    assert hits["off"] == [], "resizing found it"
    hits = [p for p in hits["auto"] if p.label == "fire"]  # the smoke of a real fire photo may be boxed too
    assert len(hits) == 1 and hits[0].score >= detector.thresholds["fire"]
    x1, y1, x2, y2 = hits[0].box
    assert pasted[0] - 4 <= x1 < x2 <= pasted[2] + 4 and pasted[1] - 4 <= y1 < y2 <= pasted[3] + 4


def test_tiled_boxes_are_in_original_pixels(detector: Detector, scene: tuple[np.ndarray, tuple[float, ...]]) -> None:
    """The fire's box from the tiled frame equals the box from a 416 px window cut around it, shifted back.

    The window is not a tile (it starts 37 px off the tile grid), so this checks the arithmetic, not the plan.
    """
    image, pasted = scene
    x0, y0 = int(pasted[0]) - 37, int(pasted[1]) - 53
    window = detector.detect([np.ascontiguousarray(image[y0 : y0 + 416, x0 : x0 + 416])])[0]
    expected = window.xyxy[window.class_ids == NAMES.index("fire")] + [x0, y0, x0, y0]
    tiled = detect_images(detector, [image], mode="on")[0]
    found = tiled.xyxy[(tiled.class_ids == NAMES.index("fire")) & overlapping(tiled.xyxy, pasted)]
    assert len(expected) >= 1 and len(found) == 1
    assert max(iou(found[0], box) for box in expected) > 0.85


def test_a_fire_cut_by_tile_seams_comes_back_as_one_box(detector: Detector, fire: Path) -> None:
    """Pasted 400 px wide across a vertical seam: tiles on both sides see pieces of it (the whole-frame pass may
    or may not, by the model's threshold), the merge returns one box."""
    image = background(WIDTH, HEIGHT, first=3)
    tiles = plan_tiles(WIDTH, HEIGHT, (416, 416))
    centre = int(tiles[1][2] - 60)  # 60 px left of tile 1's right edge, in its overlap with tile 2
    pasted = paste(image, fire, 400, centre - 200, 700)
    pieces = detect_pieces(detector, image).with_min_scores(detector.thresholds)
    fires = pieces[(pieces.class_ids == NAMES.index("fire")) & overlapping(pieces.xyxy, pasted)]
    tiles_seen = set(fires.data["tile"].tolist()) - {FULL_FRAME}
    assert len(tiles_seen) >= 2 and fires.data["cut"].any(), "the seams cut no piece"

    merged = merge_tiles(pieces)
    found = merged.xyxy[(merged.class_ids == NAMES.index("fire")) & overlapping(merged.xyxy, pasted)]
    assert len(found) == 1
    whole = found[0]
    alone = detector.detect([np.ascontiguousarray(image[600:1200, centre - 300 : centre + 300])])[0]
    reference = alone.xyxy[alone.class_ids == NAMES.index("fire")] + [centre - 300, 600, centre - 300, 600]
    assert max(iou(whole, box) for box in reference) > 0.6


def _pieces(rows: list[tuple[tuple[float, float, float, float], float, str, bool]]) -> Detections:
    boxes, scores, labels, cut = zip(*rows, strict=True)
    data = {"tile": np.arange(len(rows)), "cut": np.array(cut)}
    return Detections(np.array(boxes), np.array(scores), [NAMES.index(label) for label in labels], NAMES, data)


def test_merge_joins_pieces_drops_duplicates_and_keeps_the_rest() -> None:
    merged = merge_tiles(
        _pieces(
            [
                ((100, 100, 200, 180), 0.9, "fire", True),  # left piece of a fire cut at x = 200
                ((180, 102, 260, 178), 0.6, "fire", True),  # right piece, from the next tile
                ((105, 104, 198, 176), 0.5, "fire", False),  # the same fire again from the whole frame
                ((120, 120, 150, 150), 0.8, "smoke", False),  # another label on the same spot: kept
                ((500, 500, 540, 540), 0.7, "garbage_bin", False),  # a small confident bin...
                ((400, 400, 900, 900), 0.3, "garbage_bin", False),  # ...inside a weak large box: the box goes
            ]
        )
    )
    rows = sorted((d.label, tuple(round(v) for v in d.box)) for d in merged)
    assert rows == [
        ("fire", (100, 100, 260, 180)),
        ("garbage_bin", (500, 500, 540, 540)),
        ("smoke", (120, 120, 150, 150)),
    ]
    assert merged.scores.tolist() == pytest.approx([0.9, 0.8, 0.7])
    plain = Detections(np.array([[0, 0, 10, 10], [1, 1, 9, 9]]), np.array([0.9, 0.5]), [3, 3], NAMES)
    assert merge_tiles(plain) is plain, "detections of an untiled image are left alone"


def test_scan_cli_tiles_drone_frames_by_default_but_not_ground_photos_or_with_tile_off(
    scene: tuple[np.ndarray, tuple[float, ...]], tmp_path: Path
) -> None:
    """The same pixels twice: as a DJI frame (XMP says it flew) and as a plain JPEG, as a phone writes. Run as
    shipped: the runtime left to `auto`, so on this machine the fastest one (model/networks.py)."""
    image, pasted = scene
    flight = {"RelativeAltitude": "+60.00", "GimbalPitchDegree": "-90.0", "FlightYawDegree": "+0.0"}
    (tmp_path / "drone.jpg").write_bytes(drone_jpeg(image, 30.5, 114.3, flight))
    cv2.imwrite(str(tmp_path / "phone.jpg"), image, [cv2.IMWRITE_JPEG_QUALITY, 92])
    records = {}
    for mode in ("default", "off"):
        command = [sys.executable, "-m", "inference_api.cli", "scan", str(tmp_path), "--no-progress"]
        completed = subprocess.run(
            [*command, *(["--tile", mode] if mode == "off" else [])],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "ENVWATCH_RUNTIME": ""},
        )
        assert completed.returncode == 0, completed.stderr
        assert completed.stderr.strip().endswith(f"on {fastest_runtime()})"), completed.stderr
        for line in completed.stdout.splitlines():
            record = json.loads(line)
            records[mode, Path(record["image"]).stem] = record
    tiled = {key for key, record in records.items() if record["tiled"]}
    assert tiled == {("default", "drone")}, "auto tiles the drone frame only; --tile off tiles nothing"
    hits = {
        key: [p for p in r["problems"] if p["type"] == "burning" and overlapping(np.array([p["box"]]), pasted)[0]]
        for key, r in records.items()
    }
    assert len([p for p in hits["default", "drone"] if p["label"] == "fire"]) == 1
    assert hits["default", "phone"] == hits["off", "drone"] == hits["off", "phone"] == []


def test_tile_thresholds_drop_weak_tile_boxes_but_never_whole_frame_ones(
    detector: Detector, scene: tuple[np.ndarray, tuple[float, ...]], tmp_path: Path
) -> None:
    """A tile is a close-up: its boxes must reach the tile thresholds (ONNX metadata `envwatch.tile_thresholds`)."""
    from training.export import write_metadata

    image, _ = scene
    plain = detect_pieces(detector, image, conf=0.05, tile_thresholds={})
    in_tile = plain.data["tile"] != FULL_FRAME
    fire = NAMES.index("fire")
    assert (in_tile & (plain.class_ids == fire)).any(), "the pasted fire is boxed in a tile"
    strict = detect_pieces(detector, image, conf=0.05, tile_thresholds={"fire": 1.0, "smoke": 1.0})
    kept_tile = strict.data["tile"] != FULL_FRAME
    assert not (kept_tile & np.isin(strict.class_ids, [fire, NAMES.index("smoke")])).any()
    assert (kept_tile.sum(), (~kept_tile).sum()) == (
        (in_tile & ~np.isin(plain.class_ids, [fire, NAMES.index("smoke")])).sum(),
        (~in_tile).sum(),
    ), "other labels' tile boxes and every whole-frame box stay"

    shipped = tmp_path / "with-tiles.onnx"
    shipped.write_bytes(Path(detector.path).read_bytes())
    write_metadata(shipped, {"envwatch.tile_thresholds": {"fire": 1.0, "smoke": 1.0}})
    reloaded = Detector.load(shipped)
    assert reloaded.tile_thresholds == {"fire": 1.0, "smoke": 1.0}
    again = detect_pieces(reloaded, image, conf=0.05)
    assert np.array_equal(again.xyxy, strict.xyxy) and np.array_equal(again.class_ids, strict.class_ids)


def test_a_photo_that_is_not_tiled_is_decoded_at_twice_its_letterboxed_size_and_a_tiled_one_whole() -> None:
    """Whatever EXIF turns it to, a 4000 x 3000 phone photo letterboxes to 416 x 312 px: 832 x 624 covers
    twice that either way up. A drone frame (aerial) or a photo `--tile on` tiles needs all its pixels,
    and one already smaller than twice the input needs no reduction."""
    least = decode_size((416, 416))
    assert least(4000, 3000, False) == (832, 624)
    assert least(3000, 4000, None) == (624, 832)
    assert least(800, 600, None) is None
    assert least(8000, 6000, True) is None
    assert decode_size((416, 416), "on")(4000, 3000, False) is None
    assert decode_size((416, 416), "off")(8000, 6000, True) == (832, 624)


def test_a_large_phone_photo_scanned_from_reduced_pixels_finds_what_its_full_pixels_show(
    detector: Detector, fire: Path, tmp_path: Path
) -> None:
    """A real fire photo enlarged to a 12 MP phone JPEG: the scan decodes it at a quarter of its size,
    and reports the file's size and the same burning problem, in the file's own pixels, as detecting
    its fully decoded pixels does (a box left in the reduced pixels would sit in the top-left quarter)."""
    from inference_api.scan import scan
    from model.images import load_image_file

    pixels = load_image_file(fire).pixels
    big = cv2.resize(pixels, (4000, round(4000 * pixels.shape[0] / pixels.shape[1])), interpolation=cv2.INTER_CUBIC)
    path = tmp_path / "phone.jpg"
    cv2.imwrite(str(path), big, [cv2.IMWRITE_JPEG_QUALITY, 92])
    reduced = load_image_file(path, least_size=decode_size(detector.input_size))
    assert reduced.pixels.shape[1] == 1000 and (reduced.width, reduced.height) == big.shape[1::-1]

    (result,) = scan([path], detector)
    full = detector.detect([load_image_file(path).pixels])[0].with_min_scores(detector.thresholds)
    expected = [p for p in detector.problems(full) if p.type == "burning"]
    found = [p for p in result.problems if p.type == "burning"]
    assert (result.width, result.height) == big.shape[1::-1] and not result.tiled
    assert expected and len(found) == len(expected)
    for want, got in zip(sorted(expected, key=lambda p: -p.score), sorted(found, key=lambda p: -p.score), strict=True):
        assert iou(want.box, got.box) > 0.9 and abs(want.score - got.score) < 0.05


def test_detections_found_on_reduced_pixels_map_back_per_axis_with_their_approximate_boxes() -> None:
    """Found at 1000 x 751 on a 4000 x 3000 photo (libjpeg rounds each side up): x times 4, y times 3000/751."""
    found = Detections(
        np.array([[100, 75.1, 200, 751]]), [0.9], [3], NAMES, size=(1000, 751), approx={"clutter": (0, 0, 500, 375.5)}
    )
    back = found.at_size((4000, 3000))
    np.testing.assert_allclose(back.xyxy, [[400, 300, 800, 3000]], rtol=1e-6)
    np.testing.assert_allclose(back.approx["clutter"], (0, 0, 2000, 1500), rtol=1e-6)
    assert back.size == (4000, 3000) and back.labels == ["fire"] and back.scores.tolist() == found.scores.tolist()
    with pytest.raises(ValueError, match="size"):
        Detections(np.zeros((0, 4)), [], [], NAMES).at_size((4000, 3000))
