"""Our onnxruntime detector against Ultralytics' own predict, and its parts against hand-computed cases.

Serving runs without torch, so model/runtime.py re-implements what Ultralytics does around the
network. The reference here is Ultralytics itself on the very same ONNX file, so any drift in
letterbox, decoding, NMS or box rescaling shows up as different boxes.

The tiny fixture model is barely trained (one epoch): its scores are low, so the comparison runs at
conf 0.001 and first asserts that there are boxes to compare at all.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
import torchvision
from ultralytics import YOLO
from ultralytics.data.augment import LetterBox

from model.detections import Detections
from model.runtime import PAD_VALUE, Detector, letterbox, nms, square_fit
from training.export import write_metadata

IMGSZ = 160
LOW_CONF = 0.001
BOX_TOLERANCE_PX = 1.0
"""Both sides compute in float32 from the same network output; 1 px leaves room for float rounding only."""
SCORE_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def images(shared_datasets: Path) -> list[np.ndarray]:
    """Eight real BGR photos of five different shapes: square 480 and 224, wide frames, and a tall crop."""
    fire = sorted((shared_datasets / "fire-continuous" / "test" / "images").glob("*.jpg"))
    decoded = [cv2.imread(str(path)) for path in fire[:60]]
    wide = [image for image in decoded if image.shape[1] > image.shape[0]][:2]
    small = [image for image in decoded if image.shape[:2] == (224, 224)][:2]
    garbage = sorted((shared_datasets / "garbage-cn" / "valid" / "images").glob("*.jpg"))[:2]
    smoke = sorted((shared_datasets / "fire-smoke-8" / "test" / "images").glob("*.jpg"))[:1]
    square = [cv2.imread(str(path)) for path in garbage + smoke]
    tall = np.ascontiguousarray(square[0][:, 130:330])  # 480 high, 200 wide
    chosen = wide + small + square + [tall]
    assert len(chosen) == 8 and len({image.shape for image in chosen}) >= 4
    return chosen


@pytest.fixture(scope="module")
def detector(tiny_onnx: Path) -> Detector:
    """On the reference runtime, whatever the suite runs on: these tests hold it to Ultralytics' own predict."""
    return Detector.load(tiny_onnx, runtime="onnxruntime")


def copy_with_metadata(source: Path, target: Path, values: dict[str, object]) -> Path:
    shutil.copy(source, target)
    write_metadata(target, values)
    return target


def unmatched(ours: Detections, theirs: Detections) -> list[tuple]:
    """Our boxes with no Ultralytics box of the same class, score and corners (each used once)."""
    free = list(range(len(theirs)))
    missing = []
    for box, score, class_id in zip(ours.xyxy, ours.scores, ours.class_ids, strict=True):
        match = next(
            (
                j
                for j in free
                if theirs.class_ids[j] == class_id
                and abs(theirs.scores[j] - score) <= SCORE_TOLERANCE
                and np.abs(theirs.xyxy[j] - box).max() <= BOX_TOLERANCE_PX
            ),
            None,
        )
        if match is None:
            missing.append((class_id, float(score), box.tolist()))
        else:
            free.remove(match)
    return missing


def test_same_boxes_as_ultralytics_predict(tiny_onnx: Path, detector: Detector, images: list[np.ndarray]) -> None:
    # With a dynamic ONNX, Ultralytics pads to the smallest stride multiple instead of the full square when every
    # image in one call has the same shape, and to the square otherwise. Our runtime pads every photo to the
    # stride, whatever it is batched with, so Ultralytics gets one call per shape (the fixture has several).
    ours = detector.detect(images, conf=LOW_CONF)
    yolo = YOLO(str(tiny_onnx), task="detect")
    theirs: dict[int, Detections] = {}
    for shape in {image.shape for image in images}:
        same = [index for index, image in enumerate(images) if image.shape == shape]
        results = yolo.predict([images[i] for i in same], conf=LOW_CONF, imgsz=IMGSZ, verbose=False)
        for index, result in zip(same, results, strict=True):
            boxes = result.boxes
            theirs[index] = Detections(boxes.xyxy.numpy(), boxes.conf.numpy(), boxes.cls.numpy(), detector.names)
    assert sum(len(found) for found in ours) > 0, "no boxes at all: nothing was compared"
    for index, (image, found) in enumerate(zip(images, ours, strict=True)):
        assert len(found) == len(theirs[index]), (
            f"image {image.shape}: {len(found)} boxes, Ultralytics {len(theirs[index])}"
        )
        assert unmatched(found, theirs[index]) == [], f"image {image.shape}"


def test_batch_gives_the_same_as_one_by_one(detector: Detector, images: list[np.ndarray]) -> None:
    batched = detector.detect(images, conf=LOW_CONF, batch_size=8)
    single = [detector.detect([image], conf=LOW_CONF, batch_size=1)[0] for image in images]
    assert sum(len(found) for found in batched) > 0
    for one, other in zip(batched, single, strict=True):
        np.testing.assert_array_equal(one.xyxy, other.xyxy)
        np.testing.assert_array_equal(one.scores, other.scores)
        np.testing.assert_array_equal(one.class_ids, other.class_ids)


@pytest.mark.parametrize(
    ("width", "height", "resized", "padding", "gains"),
    [
        # 480x230: gain 1/3, 160 x round(76.67)=77, 83 rows of padding split 41 above / 42 below
        (480, 230, (160, 77), (0, 0, 41, 42), (1 / 3, 77 / 230)),
        # 100x300: gain 0.5333, round(53.33)=53 x 160, 107 columns split 53 left / 54 right
        (100, 300, (53, 160), (53, 54, 0, 0), (53 / 100, 160 / 300)),
        # 80x80 is scaled up to fill the square with no padding
        (80, 80, (160, 160), (0, 0, 0, 0), (2.0, 2.0)),
    ],
)
def test_letterbox_hand_computed(width, height, resized, padding, gains) -> None:
    image = np.full((height, width, 3), 7, dtype=np.uint8)
    fitted, fit = letterbox(image, (IMGSZ, IMGSZ))
    left, right, top, bottom = padding
    assert fitted.shape == (IMGSZ, IMGSZ, 3)
    assert (fit.pad_x, fit.pad_y, fit.width, fit.height) == (left, top, width, height)
    assert (fit.gain_x, fit.gain_y) == pytest.approx(gains)
    inner = fitted[top : IMGSZ - bottom, left : IMGSZ - right]
    assert inner.shape[:2] == (resized[1], resized[0]) and (inner == 7).all()
    assert (fitted == PAD_VALUE).sum() == fitted.size - inner.size
    np.testing.assert_array_equal(fitted, LetterBox((IMGSZ, IMGSZ), auto=False)(image=image))


@pytest.mark.parametrize(("width", "height"), [(480, 230), (100, 300), (80, 80), (640, 479), (333, 1000), (1, 9)])
def test_stride_letterbox_is_ultralytics_rect_and_pads_on_to_the_square(width, height) -> None:
    image = np.random.default_rng(width * height).integers(0, 255, (height, width, 3), dtype=np.uint8)
    fitted, fit = letterbox(image, (IMGSZ, IMGSZ), stride=32)
    np.testing.assert_array_equal(fitted, LetterBox((IMGSZ, IMGSZ), auto=True, stride=32)(image=image))
    assert fitted.shape[0] % 32 == 0 and fitted.shape[1] % 32 == 0
    extra_y, extra_x = (IMGSZ - fitted.shape[0]) // 2, (IMGSZ - fitted.shape[1]) // 2
    padded = cv2.copyMakeBorder(fitted, extra_y, extra_y, extra_x, extra_x, cv2.BORDER_CONSTANT, value=(PAD_VALUE,) * 3)
    square, square_record = letterbox(image, (IMGSZ, IMGSZ))
    np.testing.assert_array_equal(padded, square)
    assert square_fit(fitted.shape, fit, (IMGSZ, IMGSZ)) == square_record


def test_detector_pads_to_the_stride_only_where_the_file_allows(tiny_onnx: Path, tmp_path: Path) -> None:
    """A detector alone, or a classifier that pads its own input: stride. A v4-v7 classifier learned on the square
    and its graph resizes whatever it gets, so those files keep the full square."""
    assert Detector.load(tiny_onnx, runtime="onnxruntime").stride == 32
    scene = {"types": ["burning"], "output": "output0"}
    old = copy_with_metadata(tiny_onnx, tmp_path / "old.onnx", {"envwatch.scene": scene})
    assert Detector.load(old, runtime="onnxruntime").stride is None
    new = copy_with_metadata(tiny_onnx, tmp_path / "new.onnx", {"envwatch.scene": {**scene, "pads_to_square": True}})
    assert Detector.load(new, runtime="onnxruntime").stride == 32


def test_decode_maps_boxes_back_to_original_pixels(detector: Detector) -> None:
    """One box centred at (80, 80), 60 x 30 in the network input, for a 480x230 photo (see above)."""
    _, fit = letterbox(np.zeros((230, 480, 3), np.uint8), (IMGSZ, IMGSZ))
    raw = np.zeros((4 + len(detector.names), 2), np.float32)
    raw[:4, 0] = [80, 80, 60, 30]
    raw[4 + 1, 0] = 0.9
    raw[4 + 2, 1] = 0.0005  # below conf: dropped
    found = detector.decode(raw, fit, conf=0.01)
    assert found.class_ids.tolist() == [1] and found.scores.tolist() == pytest.approx([0.9])
    # x: (50, 110) / (1/3); y: (65 - 41, 95 - 41) / (77 / 230)
    np.testing.assert_allclose(found.xyxy, [[150, 24 * 230 / 77, 330, 54 * 230 / 77]], atol=1e-3)


def test_decode_suppresses_within_a_class_only(detector: Detector) -> None:
    _, fit = letterbox(np.zeros((160, 160, 3), np.uint8), (IMGSZ, IMGSZ))
    raw = np.zeros((4 + len(detector.names), 3), np.float32)
    raw[:4] = np.array([[50, 50, 40, 40], [51, 50, 40, 40], [50, 50, 40, 40]], np.float32).T
    raw[4 + 0, :2] = [0.8, 0.7]  # two near-identical boxes of class 0: one survives
    raw[4 + 3, 2] = 0.6  # the same box as class 3: kept beside it
    found = detector.decode(raw, fit, conf=0.1)
    assert found.class_ids.tolist() == [0, 3]
    assert found.scores.tolist() == pytest.approx([0.8, 0.6])


def test_nms_hand_computed() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [20, 20, 30, 30], [3, 0, 13, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.85, 0.7], np.float32)
    # box 1 overlaps box 0 with IoU 90/110 = 0.82 > 0.7: suppressed; box 3 has IoU 70/130 = 0.54: kept
    assert nms(boxes, scores, 0.7).tolist() == [0, 2, 3]
    assert nms(boxes, scores, 0.5).tolist() == [0, 2]
    assert nms(boxes, scores, 0.9).tolist() == [0, 2, 1, 3]


def test_nms_matches_torchvision_on_random_boxes() -> None:
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 150, (400, 2)).astype(np.float32)
    boxes = np.concatenate([corners, corners + rng.uniform(5, 60, (400, 2)).astype(np.float32)], axis=1)
    scores = rng.uniform(0, 1, 400).astype(np.float32)
    for iou in (0.3, 0.5, 0.7):
        expected = torchvision.ops.nms(torch.from_numpy(boxes), torch.from_numpy(scores), iou).numpy()
        np.testing.assert_array_equal(nms(boxes, scores, iou), expected)


def test_model_without_envwatch_metadata_is_refused(tiny_onnx: Path, tmp_path: Path) -> None:
    graph = onnx.load(str(tiny_onnx))
    kept = [prop for prop in graph.metadata_props if not prop.key.startswith("envwatch.")]
    assert len(kept) < len(graph.metadata_props)
    del graph.metadata_props[:]
    graph.metadata_props.extend(kept)
    plain = tmp_path / "plain.onnx"
    onnx.save(graph, str(plain))
    with pytest.raises(ValueError, match=r"lacks envwatch metadata \['envwatch.input_size', 'envwatch.names'"):
        Detector.load(plain)
    with pytest.raises(ValueError, match="export it with `envwatch export`"):
        Detector.load(plain)


def test_shipped_per_label_thresholds_apply_when_conf_is_none(
    tiny_onnx: Path, detector: Detector, images: list[np.ndarray], tmp_path: Path
) -> None:
    """Ship the median of its scores for the label the model finds most, and 1.0 (nothing) for the others."""
    low = detector.detect(images, conf=LOW_CONF)
    scores = np.concatenate([found.scores for found in low])
    class_ids = np.concatenate([found.class_ids for found in low])
    assert len(set(class_ids.tolist())) > 1, "one label only: per-label thresholds would not be tested"
    busiest = int(np.bincount(class_ids).argmax())
    median = float(np.median(scores[class_ids == busiest]))
    thresholds = dict.fromkeys(detector.names, 1.0) | {detector.names[busiest]: median}
    model = copy_with_metadata(tiny_onnx, tmp_path / "shipped.onnx", {"envwatch.thresholds": thresholds})
    shipped = Detector.load(model)
    assert shipped.thresholds == thresholds

    found = shipped.detect(images)
    limits = np.array([thresholds[name] for name in detector.names], np.float32)
    expected = [everything[everything.scores > limits[everything.class_ids]] for everything in low]
    assert 0 < sum(len(f) for f in found) < (class_ids == busiest).sum()
    assert set(np.concatenate([f.class_ids for f in found]).tolist()) == {busiest}
    for one, other in zip(found, expected, strict=True):
        np.testing.assert_array_equal(one.xyxy, other.xyxy)
        np.testing.assert_array_equal(one.scores, other.scores)
        np.testing.assert_array_equal(one.class_ids, other.class_ids)
