"""Acceptance: shared data -> dataset -> one epoch of training -> ONNX export -> runtime -> `envwatch scan`.

Each stage is the project's real code (the fixtures in conftest.py train and export the tiny model);
this test checks that what comes out of the far end is a scan record for every photo, made by the
model version the export wrote.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from model.images import load_image_file
from model.runtime import Detector

RECORD_KEYS = {
    "image",
    "width",
    "height",
    "sha256",
    "detections",
    "problems",
    "gps",
    "georef",
    "tiled",
    "captured_at",
    "model",
    "warnings",
}


def test_trained_exported_model_scans_every_photo(
    shared_datasets: Path, tiny_checkpoint: Path, tiny_onnx: Path, tmp_path: Path
) -> None:
    assert tiny_checkpoint.suffix == ".pt" and tiny_checkpoint.stat().st_size > 0
    detector = Detector.load(tiny_onnx)
    assert detector.version == "tiny-test" and detector.input_size == (160, 160)

    folder = tmp_path / "photos"
    folder.mkdir()
    for source in ("garbage-cn/valid", "fire-smoke-8/test", "fire-continuous/test"):
        for path in sorted((shared_datasets / source / "images").glob("*.jpg"))[:3]:
            shutil.copy(path, folder / f"{source.split('/')[0]}-{path.name}")
    photos = sorted(folder.iterdir())
    assert len(detector.detect([load_image_file(photos[0]).pixels])) == 1

    envwatch = Path(sys.executable).with_name("envwatch")  # the installed console script, as a user runs it
    out = tmp_path / "scan.jsonl"
    completed = subprocess.run(
        [str(envwatch), "scan", str(folder), "--model", str(tiny_onnx), "--out", str(out), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [record["image"] for record in records] == [str(path) for path in photos]
    for record in records:
        assert set(record) == RECORD_KEYS, record
        assert record["model"] == "tiny-test"
        assert record["width"] > 0 and record["height"] > 0
    assert completed.stderr.strip().splitlines()[-1].startswith(f"envwatch scan: {len(photos)} images, ")
    runtime = detector.network.runtime  # the suite's (tests/conftest.py), resolved as the scan resolves it
    assert completed.stderr.strip().endswith(f", 0 errors (model tiny-test on {runtime})")
