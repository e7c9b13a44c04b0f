"""`envwatch scan --engine ray` on a real local Ray with two workers, and resumable scans.

One Ray session serves the module (starting Ray takes seconds): the in-process scans use it as
it is, and one scan runs as a separate command joining it by address, as a scan joins a cluster.
The folder holds real photos, a broken JPEG and a georeferenced drone frame large enough to be
tiled, so the Ray path is checked on every kind of result the local engine writes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from drone_scenes import FIRES, STREETS, background, drone_jpeg, paste, surest_fire

from inference_api import cli
from inference_api.scan_manifest import manifest_path
from model.registry import promoted_model
from model.runtime import Detector

XMP = {"RelativeAltitude": "+80", "GimbalYawDegree": "+10", "GimbalPitchDegree": "-90"}


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("survey") / "survey"
    (root / "drone").mkdir(parents=True)
    for photo in sorted((STREETS / "images").glob("*.jpg"))[:4] + sorted(FIRES.glob("*.jpg"))[:3]:
        shutil.copy(photo, root / photo.name)
    (root / "broken.jpg").write_bytes(sorted(FIRES.glob("*.jpg"))[0].read_bytes()[:3000])
    frame = background(2080, 1560, first=5)
    paste(frame, surest_fire(Detector.load(promoted_model())), 200, 900, 700)
    (root / "drone" / "DJI_0007.JPG").write_bytes(drone_jpeg(frame, 30.26, 120.15, XMP, focal_35mm=24))
    return root


def scan(*arguments: str | Path) -> int:
    return cli.main(["scan", *map(str, arguments), "--no-progress"])


@pytest.fixture(scope="module")
def local_outputs(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("local")
    texts = {}
    for kind in ("jsonl", "geojson"):
        assert scan(folder, "--format", kind, "--out", out / f"scan.{kind}") == 0
        texts[kind] = (out / f"scan.{kind}").read_text(encoding="utf-8")
    return texts


def test_ray_with_two_workers_writes_what_the_local_engine_writes(
    ray_address: str, folder: Path, local_outputs: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "ray.jsonl"
    assert scan(folder, "--engine", "ray", "--workers", "2", "--out", out) == 0
    assert out.read_text(encoding="utf-8") == local_outputs["jsonl"]
    records = [json.loads(line) for line in local_outputs["jsonl"].splitlines()]
    assert len(records) == 9 and sum("error" in r for r in records) == 1
    drone = next(r for r in records if r["image"].endswith("DJI_0007.JPG"))
    assert drone["tiled"] and drone["georef"]["method"] == "camera"
    assert any(p["type"] == "burning" and p["position"] for p in drone["problems"])


@pytest.mark.parametrize("kind", ["jsonl", "geojson"])
def test_a_crashed_scan_resumes_where_it_stopped(
    ray_address: str, folder: Path, local_outputs: dict[str, str], tmp_path: Path, kind: str, capsys
) -> None:
    """Leave output and manifest as a crash while writing the fourth image does, resume on Ray: the same file.

    The first three images are deleted before resuming: rescanning them would turn them into errors.
    """
    survey = tmp_path / "survey"
    shutil.copytree(folder, survey)
    out = tmp_path / f"scan.{kind}"
    assert scan(survey, "--format", kind, "--out", out) == 0
    full = out.read_text(encoding="utf-8")
    assert full == local_outputs[kind].replace(str(folder), str(survey))
    lines = manifest_path(out).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1 + 9
    done = [json.loads(line) for line in lines[1:4]]
    manifest_path(out).write_text("\n".join(lines[:4]) + '\n{"image": "' + str(survey), encoding="utf-8")
    with out.open("r+b") as handle:  # the fourth image's record, half written
        handle.truncate(done[-1]["offset"] + 40)
    for entry in done:
        Path(entry["image"]).unlink()
    capsys.readouterr()

    assert scan(survey, "--format", kind, "--out", out, "--resume", "--engine", "ray", "--workers", "2") == 0
    assert "3 done, 6 to scan" in capsys.readouterr().err
    assert out.read_text(encoding="utf-8") == full
    assert len(manifest_path(out).read_text(encoding="utf-8").splitlines()) == 1 + 9


def test_resuming_with_other_settings_is_refused_and_changes_nothing(folder: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "scan.jsonl"
    assert scan(folder / "drone", "--out", out, "--tile", "off") == 0
    before = (out.read_bytes(), manifest_path(out).read_bytes())
    assert scan(folder / "drone", "--out", out, "--resume") == 2
    assert "tile='off'; this one uses tile='auto'" in capsys.readouterr().err
    assert (out.read_bytes(), manifest_path(out).read_bytes()) == before
    assert scan(folder, "--resume") == 2 and scan(folder, "--out", tmp_path / "new.jsonl", "--resume") == 2
    assert scan(folder, "--workers", "2") == 2, "--workers without --engine ray"


def test_a_separate_scan_joins_the_ray_cluster_by_address(
    ray_address: str, folder: Path, local_outputs: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "joined.jsonl"
    command = [sys.executable, "-m", "inference_api.cli", "scan", str(folder), "--engine", "ray", "--no-progress"]
    command += ["--ray-address", ray_address, "--workers", "2", "--out", str(out)]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr.strip().splitlines()[-1].startswith("envwatch scan: 9 images, ")
    assert out.read_text(encoding="utf-8") == local_outputs["jsonl"]
    nodes = ray.nodes()
    assert nodes and all(node["Alive"] for node in nodes), "the joined cluster was left running"
