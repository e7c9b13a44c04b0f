"""The HTML report: `envwatch evaluate --report` for real, read back as a reviewer's browser would.

The page promises three things a reviewer relies on without checking: its numbers are the
evaluation's (not a second, drifting computation), it opens offline (everything embedded), and it
shows the failures (galleries). The command runs on the tiny model and a few val images per source;
the page is parsed with the standard library and every number in its tables is compared with the
JSON it names.
"""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np

from training.metrics import match_greedy
from training.report import at, match_at_iou

REPO = Path(__file__).resolve().parents[1]
LIMIT = 6


class ReportParser(HTMLParser):
    """Collects numeric cells, every src/href, the JSON blocks and the gallery tiles."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[tuple[str, str]] = []
        self.links: list[tuple[str, str, str]] = []
        self.blocks: dict[str, str] = {}
        self.tiles: dict[str, int] = {}
        self._cell: str | None = None
        self._script: str | None = None
        self._gallery: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.links += [(tag, name, value or "") for name, value in attrs if name in ("src", "href")]
        if tag == "td" and "data-json" in found:
            self._cell, self._text = found["data-json"], []
        elif tag == "script":
            self._script, self._text = found.get("id", ""), []
        elif tag == "div" and "data-gallery" in found:
            self._gallery = found["data-gallery"]
            self.tiles[self._gallery] = 0
        elif tag == "img" and self._gallery is not None:
            self.tiles[self._gallery] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None:
            self.cells.append((self._cell, "".join(self._text).strip()))
            self._cell = None
        elif tag == "script" and self._script is not None:
            self.blocks[self._script] = "".join(self._text)
            self._script = None
        elif tag == "div":
            self._gallery = None

    def handle_data(self, data: str) -> None:
        self._text.append(data)


def shown(value: object) -> str:
    """The page's number format: three decimals for rates and scores, counts as they are, a dash for none."""
    if value is None:
        return "–"
    return str(value) if isinstance(value, int) else f"{value:.3f}"


def test_report_matches_the_evaluation_and_is_self_contained(
    tiny_onnx: Path, built_dataset: Path, tmp_path: Path
) -> None:
    out, report = tmp_path / "val.json", tmp_path / "report"
    command = [sys.executable, "-m", "inference_api.cli", "evaluate", "--model", str(tiny_onnx), "--data"]
    command += [str(built_dataset), "--split", "val", "--out", str(out), "--report", str(report)]
    command += ["--limit", str(LIMIT), "--choose-thresholds"]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    result = json.loads(out.read_text())
    assert result["images"] == LIMIT * len(result["sources"])

    parser = ReportParser()
    parser.feed((report / "index.html").read_text(encoding="utf-8"))
    blocks = {name: json.loads(text) for name, text in parser.blocks.items()}
    assert blocks["metrics"] == result  # the page carries exactly what `evaluate --out` wrote

    # Every number in a table is the JSON's value at the path it names, at the precision shown.
    for path, text in parser.cells:
        block, *keys = path.split("/")
        assert text == shown(at(blocks[block], keys)), path
    paths = {path for path, _ in parser.cells}
    for source, scope in [*(("sources/" + s, m) for s, m in result["sources"].items()), ("all", result["all"])]:
        for label in scope["labels"]:
            assert {f"metrics/{source}/labels/{label}/{k}" for k in ("boxes", "ap50", "ap50_95")} <= paths
        for problem in scope["problems"]:
            assert f"metrics/{source}/problems/{problem}/recall" in paths
            assert f"metrics/{source}/problems/{problem}/false_alarm_rate" in paths
    assert {f"metrics/thresholds/{label}" for label in result["thresholds"]} <= paths
    assert {f"metrics/threshold_choice/labels/{label}/threshold" for label in result["thresholds"]} <= paths
    assert "metrics/garbage_cn_burning_false_alarm/false_alarm_rate" in paths

    # The page's own breakdowns account for the same images and boxes as the evaluation.
    extra = blocks["report"]
    gt_boxes = sum(m["boxes"] for m in result["all"]["labels"].values())
    matrix = np.array(extra["confusion"]["matrix"])
    assert extra["confusion"]["axis"][-1] == "background"
    assert matrix[:-1].sum() == gt_boxes
    assert sum(rows["all"]["boxes"] for rows in extra["box_size"].values()) == gt_boxes
    assert sum(scope["images"] for scope in extra["image_size"].values()) == result["images"]
    assert {f"report/confusion/matrix/{r}/{c}" for r in range(len(matrix)) for c in range(len(matrix))} <= paths

    # Offline: every image is a data URI, nothing is fetched or linked.
    assert parser.links, "no images at all"
    for tag, name, value in parser.links:
        assert tag == "img" and name == "src" and value.startswith(("data:image/png;base64,", "data:image/jpeg;")), (
            tag,
            name,
            value[:60],
        )
    assert len([link for link in parser.links if link[2].startswith("data:image/png")]) == 2  # curves, confusion

    # Galleries exist, with a tile per entry (a barely trained model both misses and cries wolf).
    assert parser.tiles["false_positives"] == len(extra["false_positives"]) > 0
    assert parser.tiles["false_negatives"] == len(extra["false_negatives"]) > 0


def test_gallery_matching_is_ap50_matching() -> None:
    """Which ground truth a prediction claims must agree with the AP50 column of `match_greedy`."""
    rng = np.random.default_rng(1)
    for _ in range(30):
        corners = rng.uniform(0, 300, (5, 2))
        gt = np.concatenate([corners, corners + rng.uniform(20, 80, (5, 2))], axis=1)
        predicted = gt[rng.integers(0, 5, 12)] + rng.normal(0, 10, (12, 4))
        predicted[:, 2:] = np.maximum(predicted[:, 2:], predicted[:, :2] + 1)
        scores = rng.uniform(0, 1, 12)
        pred_to_gt, found = match_at_iou(predicted, scores, gt)
        np.testing.assert_array_equal(pred_to_gt >= 0, match_greedy(predicted, scores, gt)[:, 0])
        assert sorted(pred_to_gt[pred_to_gt >= 0]) == sorted(np.flatnonzero(found))
