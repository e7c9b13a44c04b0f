"""The whole loop, for real on CPU: label a new problem type through the API, export, retrain, register, promote.

No openly licensed photo of an illegal structure exists here, so the test teaches the new type
`illegal_structure` with a stand-in that is real and visually consistent: the single large
`garbage_bin` box of garbage-cn photos, boxed programmatically from the source's own labels and
posted as `illegal_structure` boxes. What is tested is the loop, not that the model knows sheds.
The shared part of the merged dataset is its first 1% in name order (fire-continuous frames), so
no shared `garbage_bin` box competes with the relabelled bins.

The server follows the registry on its own: after `envwatch models promote reviewed-loop` the same running
process raises `illegal_structure` on held-out photos it never trained on, and after
`envwatch models rollback` it serves the baseline again.
"""

from __future__ import annotations

import io
import json
import shutil
import time
import zipfile
from pathlib import Path

import httpx
import pytest
from service_helpers import DATASETS, Server

from inference_api.cli import main as envwatch
from model.registry import Registry, Version

GARBAGE = DATASETS / "garbage-cn"
TRAIN_PHOTOS = 16
HELD_OUT = 4
RETRAINED = "reviewed-loop"
"""The retrained version's name: unlike `v2` or `v3`, never the name of a model the package ships."""


def single_big_bin(split: str) -> list[tuple[Path, tuple[float, float, float, float]]]:
    """Photos whose only boxes are one garbage_bin over 12% of the frame, with that box (normalised cx, cy, w, h)."""
    found = []
    for labels in sorted((GARBAGE / split / "labels").glob("*.txt")):
        rows = [line.split() for line in labels.read_text().splitlines() if line.strip()]
        bins = [tuple(float(v) for v in row[1:5]) for row in rows if row[0] == "1"]
        if len(bins) == 1 and bins[0][2] * bins[0][3] > 0.12 and len(rows) <= 2:
            found.append((GARBAGE / split / "images" / f"{labels.stem}.jpg", bins[0]))
    return found


def pixels(box: tuple[float, float, float, float], width: int, height: int) -> dict[str, float]:
    cx, cy, w, h = box
    x1, y1, x2, y2 = (cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height
    return {"x1": x1, "y1": y1, "x2": x2, "y2": y2}


def iou(a: dict[str, float], b: dict[str, float]) -> float:
    w = max(0.0, min(a["x2"], b["x2"]) - max(a["x1"], b["x1"]))
    h = max(0.0, min(a["y2"], b["y2"]) - max(a["y1"], b["y1"]))
    union = (a["x2"] - a["x1"]) * (a["y2"] - a["y1"]) + (b["x2"] - b["x1"]) * (b["y2"] - b["y1"]) - w * h
    return w * h / union


def serving(client: httpx.Client, version: str, timeout: float = 30) -> dict:
    """Wait until the running server answers with `version` (it polls the registry)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        models = client.get("/v1/models").json()
        if models["serving"] == version:
            return models
        time.sleep(0.25)
    raise AssertionError(f"server still serves {models['serving']}, not {version}: {models}")


@pytest.fixture(scope="module")
def registry(service_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registry outside the repo holding the baseline model as v1, promoted (the package's own stays untouched)."""
    root = tmp_path_factory.mktemp("registry")
    shipped = Registry()
    files = {"path": service_model, **{f: shipped.root / getattr(shipped.get("v1"), f) for f in ("card", "metrics")}}
    for name, source in files.items():
        (root / "versions" / "v1").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, root / "versions" / "v1" / f"{name}{source.suffix}")
    copy = Registry(root)
    copy.add(Version("v1", "versions/v1/path.onnx", "versions/v1/card.md", "versions/v1/metrics.json"))
    copy.promote("v1", "test")
    return root


def test_label_export_retrain_promote_and_rollback(
    database_url: str,
    registry: Path,
    built_dataset: Path,
    pretrained_weights: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    root = tmp_path_factory.mktemp("loop")
    env = {
        "ENVWATCH_DATA_DIR": str(root / "images"),
        "ENVWATCH_MODEL_REGISTRY": str(registry),
        "ENVWATCH_MODEL_POLL_S": "0.5",
    }
    server = Server(root=root, database_url=database_url, env=env, admin_key="ew_test_loop_admin_key").start()
    try:
        inspector = server.new_key("inspector", "inspector-zhao")
        with server.client(inspector) as client:
            baseline = client.get("/v1/models").json()
            assert baseline["promoted"] == "v1" and baseline["serving"] is not None, baseline
            baseline_version = baseline["serving"]
            assert baseline_version != RETRAINED, "the wait for the promotion below would pass at once"
            photos = single_big_bin("train")[:TRAIN_PHOTOS]
            uploaded = client.post(
                "/v1/inspections",
                files=[("files", (p.name, p.read_bytes(), "image/jpeg")) for p, _ in photos],
                data={"region": "test-village"},
            )
            assert uploaded.status_code == 201, uploaded.text
            for result, (_, box) in zip(uploaded.json()["files"], photos, strict=True):
                image = result["image"]
                drawn = client.post(
                    "/v1/labels",
                    json={
                        "image_id": image["id"],
                        "type": "illegal_structure",
                        "box": pixels(box, image["width"], image["height"]),
                        "note": "stand-in: a garbage bin boxed as the new type",
                    },
                )
                assert drawn.status_code == 201, drawn.text
                assert drawn.json()["label"] == "illegal_structure" and drawn.json()["created_by"] == "inspector-zhao"
            summary = {t["type"]: t for t in client.get("/v1/labels/summary").json()["types"]}
            assert summary["illegal_structure"]["positives"] == TRAIN_PHOTOS

        reader = server.new_key("integration", "training-box")
        with server.client(reader) as client:
            exported = client.get("/v1/labels/export/yolo")
        assert exported.status_code == 200 and exported.headers["content-type"] == "application/zip"
        export = root / "reviews.zip"
        export.write_bytes(exported.content)
        with zipfile.ZipFile(io.BytesIO(exported.content)) as archive:
            provenance = json.loads(archive.read("provenance.json"))
        assert len(provenance["images"]) == TRAIN_PHOTOS
        assert {b["by"] for i in provenance["images"] for b in i["boxes"]} == {"inspector-zhao"}

        runs = root / "runs"
        assert (
            envwatch(
                [
                    *("train", "--data", str(built_dataset / "data.yaml"), "--include-reviews", str(export)),
                    *("--min-class-boxes", "8", "--fraction", "0.01", "--epochs", "30", "--imgsz", "160"),
                    *("--batch", "8", "--project", str(runs), "--name", RETRAINED),
                    *("--pretrained", str(pretrained_weights)),
                ]
            )
            == 0
        )
        dataset = runs / RETRAINED / "dataset"
        record = json.loads((dataset / "reviews.json").read_text())
        assert record["new_labels"] == {"illegal_structure": TRAIN_PHOTOS}
        assert sum(record["reviewed_images"].values()) == TRAIN_PHOTOS
        checkpoint = runs / RETRAINED / "weights" / "best.pt"
        assert envwatch(["models", "--registry", str(registry), "add", RETRAINED, "--checkpoint", str(checkpoint),
                         "--dataset", str(dataset), "--imgsz", "160"]) == 0  # fmt: skip
        card = (registry / "versions" / RETRAINED / "MODEL_CARD.md").read_text()
        assert f"Reviewed images used: {TRAIN_PHOTOS}**" in card
        assert "| all | illegal_structure |" in card and "at least 8 reviewed boxes" in card
        assert envwatch(["models", "--registry", str(registry), "evaluate", RETRAINED, "--dataset", str(dataset)]) == 0
        assert envwatch(["models", "--registry", str(registry), "promote", RETRAINED]) == 0

        held_out = single_big_bin("valid")[:HELD_OUT]
        with server.client(inspector) as client:
            models = serving(client, RETRAINED)
            assert models["promoted"] == RETRAINED and {v["version"] for v in models["versions"]} == {"v1", RETRAINED}
            labels = {label["key"]: label["problem"] for label in client.get("/v1/model").json()["labels"]}
            assert labels["illegal_structure"] == "illegal_structure"
            response = client.post(
                "/v1/inspections", files=[("files", (p.name, p.read_bytes(), "image/jpeg")) for p, _ in held_out]
            )
            assert response.status_code == 201, response.text
            body = response.json()
            hits = 0
            for result, (_, box) in zip(body["files"], held_out, strict=True):
                truth = pixels(box, result["image"]["width"], result["image"]["height"])
                mine = [f for f in body["findings"] if f["id"] in result["findings"]]
                raised = [f for f in mine if f["type"] == "illegal_structure"]
                hits += any(iou(f["box"], truth) >= 0.5 for f in raised)
                assert all(f["model_version"] == RETRAINED for f in body["findings"])
            assert hits >= 1, f"no illegal_structure on any of {HELD_OUT} held-out photos: {body['findings']}"

            assert envwatch(["models", "--registry", str(registry), "rollback"]) == 0
            serving(client, baseline_version)
    finally:
        server.stop()
