"""Label Studio round trips, against the layout of a real Label Studio export.

`REAL_LAYOUT` reproduces, with our own values, the structure of an export written by Label Studio
1.x (the converter project's fixture HumanSignal/label-studio-converter
tests/data/test_export_yolo/data.json): tasks with `annotations[].result[]`, a `choices` result
beside each box, two annotators on one task, `completed_by` as a user id, `original_width/height`
in pixels and the box in percent.
"""

from __future__ import annotations

import json

import pytest

from training.labelstudio import LabelStudioError, from_tasks, to_tasks
from training.reviews import ReviewedBox, ReviewedImage

SHA_A, SHA_B = "a" * 64, "b" * 64
SIZES = {SHA_A: (640, 480), SHA_B: (2800, 2800)}


def result(rid: str, x: float, y: float, w: float, h: float, label: str, size: int = 2800, **extra: object) -> dict:
    return {
        "original_width": size,
        "original_height": size,
        "image_rotation": 0,
        "value": {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label], **extra},
        "id": rid,
        "from_name": "label",
        "to_name": "image",
        "type": "rectanglelabels",
        "origin": "manual",
    }


def annotation(aid: int, user: int, results: list[dict], updated: str, **extra: object) -> dict:
    return {
        "id": aid,
        "completed_by": user,
        "result": results,
        "was_cancelled": False,
        "ground_truth": False,
        "created_at": "2022-12-27T13:36:25.747398Z",
        "updated_at": updated,
        "lead_time": 12.5,
        "prediction": {},
        "result_count": 0,
        "task": 1,
        "project": 1,
        "parent_prediction": None,
        "parent_annotation": None,
        **extra,
    }


REAL_LAYOUT = [
    {
        "id": 1,
        "annotations": [
            annotation(
                1,
                2,
                [
                    result("C7oHaRDVVC", 37.158, 70.673, 4.189, 4.735, "illegal_structure"),
                    {**result("C7oHaRDVVC", 37.158, 70.673, 4.189, 4.735, "x"), "type": "choices"},
                    result("9GLz8g9skg", 57.791, 62.874, 3.808, 4.636, "clutter_pile"),
                ],
                "2022-12-27T21:04:40.495704Z",
            ),
            annotation(2, 1, [result("ipBS_GBGZp", 37.887, 71.766, 3.825, 4.553, "fire")], "2022-12-27T21:05:03Z"),
            annotation(3, 1, [result("zz", 1, 1, 2, 2, "fire")], "2023-01-01T00:00:00Z", was_cancelled=True),
        ],
        "drafts": [],
        "predictions": [],
        "data": {"image": f"/data/local-files/?d=photos/{SHA_B}.jpg"},
        "meta": {},
        "created_at": "2022-12-27T12:06:58.502299Z",
        "updated_at": "2022-12-27T21:05:03.168883Z",
        "inner_id": 1,
        "total_annotations": 2,
        "cancelled_annotations": 1,
        "total_predictions": 0,
        "project": 1,
        "updated_by": 1,
    },
    {
        "id": 2,
        "annotations": [
            annotation(
                4,
                1,
                [
                    result("r1", 10, 10, 20, 20, "garbage_bin"),
                    result("r2", 10, 10, 20, 20, "clutter_pile", rotation=30),
                    result("r3", 10, 10, 20, 20, "exposed_garbage"),
                ],
                "2022-12-28T00:00:00Z",
            )
        ],
        "data": {"image": "/data/upload/1/unknown-photo.jpg"},
    },
]


def test_a_real_label_studio_export_reads_as_pixel_boxes_with_reasons_for_the_rest() -> None:
    boxes, skipped = from_tasks(json.loads(json.dumps(REAL_LAYOUT)), SIZES.get)
    # Task 1: the annotation updated last wins (annotator 1's single fire box); the cancelled one is ignored.
    assert [(b.type, b.label, b.by, b.ref) for b in boxes] == [("burning", "fire", "label-studio:1", None)]
    x1, y1, x2, y2 = boxes[0].box
    assert x1 == pytest.approx(37.887 / 100 * 2800) and y2 == pytest.approx((71.766 + 4.553) / 100 * 2800)
    assert boxes[0].sha256 == SHA_B and boxes[0].external_id == "ls:1/2/ipBS_GBGZp"
    assert [s.task for s in skipped] == ["2"] and "no stored photo" in skipped[0].reason


def test_ground_truth_annotation_wins_and_bad_results_are_skipped_one_by_one() -> None:
    tasks = json.loads(json.dumps(REAL_LAYOUT))
    tasks[0]["annotations"][0]["ground_truth"] = True
    tasks[1]["data"]["sha256"] = SHA_A
    boxes, skipped = from_tasks(tasks, SIZES.get)
    assert [b.label for b in boxes] == ["illegal_structure", "clutter_pile", "exposed_garbage"]
    reasons = {s.task: s.reason for s in skipped}
    assert "garbage_bin" in reasons["2/r1"] and "rotated" in reasons["2/r2"]


def test_not_an_export_is_refused_as_a_whole() -> None:
    with pytest.raises(LabelStudioError):
        from_tasks({"tasks": []}, SIZES.get)
    with pytest.raises(LabelStudioError):
        from_tasks(["not a task"], SIZES.get)


def test_our_export_round_trips_boxes_within_rounding() -> None:
    image = ReviewedImage(
        sha256=SHA_A,
        suffix=".jpg",
        width=640,
        height=480,
        boxes=(
            ReviewedBox(
                "illegal_structure",
                "illegal_structure",
                (12.3, 45.6, 300.9, 470.1),
                "manual",
                "wang",
                "2026-01-02T03:04:05+00:00",
                None,
                "label:7",
            ),  # fmt: skip
            ReviewedBox(
                "smoke",
                "burning",
                (0.0, 0.0, 640.0, 200.5),
                "confirmed",
                "li",
                "2026-01-02T03:04:06+00:00",
                "v1",
                "finding:3",
            ),  # fmt: skip
        ),
        hard_negatives=(
            ReviewedBox(
                "fire",
                "burning",
                (100, 100, 150, 160),
                "dismissed",
                "li",
                "2026-01-02T03:04:07+00:00",
                "v1",
                "finding:4",
            ),  # fmt: skip
        ),
    )
    tasks = json.loads(json.dumps(to_tasks([image], lambda i: f"images/{i.split}/{i.file}")))
    task = tasks[0]
    for key in ("id", "data", "annotations", "predictions", "meta", "inner_id", "total_annotations"):
        assert key in task
    first = task["annotations"][0]["result"][0]
    assert set(REAL_LAYOUT[0]["annotations"][0]["result"][0]) == set(first)
    assert set(REAL_LAYOUT[0]["annotations"][0]["result"][0]["value"]) == set(first["value"])
    assert task["predictions"][0]["model_version"] == "v1" and task["data"]["provenance"]["ew-label-7"]["by"] == "wang"
    boxes, skipped = from_tasks(tasks, SIZES.get)
    assert not skipped
    assert [(b.ref, b.label, b.type) for b in boxes] == [
        ("label:7", "illegal_structure", "illegal_structure"),
        ("finding:3", "smoke", "burning"),
    ]
    for read, wrote in zip(boxes, image.boxes, strict=True):
        assert read.box == pytest.approx(wrote.box, abs=1e-6)
