"""`envwatch evaluate --report DIR`: one self-contained HTML page that shows what the numbers mean.

The JSON of `envwatch evaluate` says how good a model is; this page shows where it fails, for a
reviewer deciding whether to ship it. It draws everything from the evaluation's one detection pass
(the `ImageResult`s that `training.evaluate.evaluate` returns), so nothing is detected twice and no
number here can drift from the JSON's:

- the evaluate JSON is embedded verbatim (`<script type="application/json" id="metrics">`), and
  every AP, rate and count in the tables is read from it;
- what the JSON does not hold (confusion matrix, breakdowns by image and box size, the operating
  point on each curve, the gallery entries) is computed here from the same pass, with the same rule
  that only images annotating a label count for it (`training.evaluate.Annotation`), and embedded
  as `id="report"`;
- every table cell that shows a number names where it came from (`data-json="metrics/all/labels/fire/ap50"`),
  so a test can check each one against the embedded JSON.

The page needs no network: figures and gallery images are data URIs and there is no script to load.

Definitions, all at IoU 0.5:

- *Curves*: per label, pooled over the sources that annotate it, from every box of the pass (score
  above 0.001), matched as AP50 matches them; the dot is the operating point at the shipped threshold.
- *Confusion matrix* (at the shipped thresholds): boxes of any label are paired with ground truth
  one to one, highest IoU first, as Ultralytics' confusion matrix pairs them; an unpaired ground-truth
  box is a miss (column background), an unpaired prediction a false alarm (row background). A
  prediction of a label its image does not annotate (smoke on fire-continuous) is left out: there it
  is neither right nor wrong.
- *Box size*: COCO's areas in the original image's pixels (small < 32², medium < 96², large); recall
  counts ground-truth boxes found by a box of their label at its shipped threshold, precision counts
  such boxes that found one.
- *Galleries*: worst false positives are the highest-scoring boxes that AP50 counts as false (no
  unclaimed ground truth of their label overlaps them), at any score; worst false negatives are the
  largest ground-truth boxes missed at the shipped thresholds. One tile per image.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from matplotlib.figure import Figure
from PIL import Image

from model.fusion import read_rules
from model.images import load_image_file
from training.dataset import DEFAULT_RECIPE
from training.evaluate import (
    Annotation,
    ImageResult,
    dataset_annotation,
    flagged_types,
    label_mask,
    label_matches,
    scope_metrics,
    split_images,
)
from training.metrics import box_iou

IOU = 0.5
BACKGROUND = "background"
IMAGE_SIZE_EDGES = (320, 640)
"""Longest side of the original image; the shared sources hold 224-256 px video frames and 480 px photos."""
BOX_SIZE_EDGES = (32**2, 96**2)
"""COCO's small / medium / large box areas, in the original image's pixels."""
GALLERY_SIZE = 12
TILE_SIDE = 360
GT_COLOUR = (60, 180, 75)  # BGR green
PRED_COLOUR = (40, 40, 230)  # BGR red
HTML_GT_COLOUR, HTML_PRED_COLOUR = "#4bb43c", "#e62828"


@dataclass(frozen=True)
class Curve:
    """One label's precision-recall points in descending score order, at IoU 0.5."""

    scores: np.ndarray
    precision: np.ndarray
    recall: np.ndarray

    def at(self, threshold: float) -> dict[str, float | int | None]:
        """Precision and recall of the boxes scoring at least `threshold` (greedy matching keeps them apart)."""
        kept = int((self.scores >= threshold).sum())
        if not kept:
            return {"boxes": 0, "precision": None, "recall": 0.0}
        return {"boxes": kept, "precision": float(self.precision[kept - 1]), "recall": float(self.recall[kept - 1])}


def annotating(images: Sequence[ImageResult], annotated: Annotation, label: str) -> list[ImageResult]:
    return [image for image in images if label in annotated(image.name)]


def pr_curve(images: Sequence[ImageResult], label: str) -> Curve | None:
    """The curve behind AP50 (same matching as `training.evaluate.label_ap`); None without ground truth."""
    parts = [label_matches(image, label) for image in images]
    n_gt = sum(p[2] for p in parts)
    if not n_gt:
        return None
    scores = np.concatenate([p[0] for p in parts])
    hits = np.concatenate([p[1][:, 0] for p in parts]).astype(np.float64)
    order = np.argsort(-scores, kind="stable")
    tp, fp = hits[order].cumsum(), (1.0 - hits[order]).cumsum()
    return Curve(scores[order], tp / np.maximum(tp + fp, 1e-9), tp / n_gt)


def match_at_iou(pred_xyxy: np.ndarray, scores: np.ndarray, gt_xyxy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`match_greedy`'s rule at IoU 0.5, keeping who matched whom: (gt index per prediction or -1, found per gt)."""
    pred_to_gt = np.full(len(scores), -1, dtype=np.int64)
    found = np.zeros(len(gt_xyxy), dtype=bool)
    if not len(scores) or not len(gt_xyxy):
        return pred_to_gt, found
    iou = box_iou(gt_xyxy, pred_xyxy)
    for j in np.argsort(-np.asarray(scores), kind="stable"):
        available = np.where(found, 0.0, iou[:, j])
        best = int(available.argmax())
        if available[best] >= IOU:
            pred_to_gt[j], found[best] = best, True
    return pred_to_gt, found


def size_bucket(value: float, edges: tuple[float, float], names: tuple[str, str, str]) -> str:
    return names[int(np.searchsorted(edges, value, side="right"))]


def image_size_name(longest: int) -> str:
    low, high = IMAGE_SIZE_EDGES
    return size_bucket(longest, IMAGE_SIZE_EDGES, (f"under {low} px", f"{low}-{high - 1} px", f"{high} px and over"))


def box_size_name(xyxy: np.ndarray) -> str:
    area = float((xyxy[2] - xyxy[0]) * (xyxy[3] - xyxy[1]))
    return size_bucket(area, BOX_SIZE_EDGES, ("small", "medium", "large"))


def confusion_matrix(images: Sequence[ImageResult], annotated: Annotation, thresholds: dict[str, float]) -> dict:
    """Rows ground truth, columns prediction, both over the labels plus background (see module docstring)."""
    names = annotated.names
    axis = [*names, BACKGROUND]
    matrix = np.zeros((len(axis), len(axis)), dtype=np.int64)
    background = len(names)
    for image in images:
        kept = image.detections.with_min_scores(thresholds)
        kept = kept[np.array([label in annotated(image.name) for label in kept.labels], dtype=bool)]
        gt_ids = [names.index(label) for label in image.gt_labels]
        pred_ids = [names.index(label) for label in kept.labels]
        iou = box_iou(image.gt_xyxy, kept.xyxy)
        pairs = sorted(zip(*np.nonzero(iou >= IOU), strict=True), key=lambda p: -iou[p])
        used_gt, used_pred = set(), set()
        for g, p in pairs:
            if g not in used_gt and p not in used_pred:
                used_gt.add(g)
                used_pred.add(p)
                matrix[gt_ids[g], pred_ids[p]] += 1
        for g in set(range(len(gt_ids))) - used_gt:
            matrix[gt_ids[g], background] += 1
        for p in set(range(len(pred_ids))) - used_pred:
            matrix[background, pred_ids[p]] += 1
    return {"axis": axis, "matrix": matrix.tolist()}


def box_size_rates(images: Sequence[ImageResult], annotated: Annotation, thresholds: dict[str, float]) -> dict:
    """Per box size and label (plus "all"): ground-truth boxes found and predicted boxes right, at the thresholds."""
    counts: dict[str, dict[str, dict[str, int]]] = {}

    def add(size: str, label: str, key: str, hit: bool) -> None:
        for name in (label, "all"):
            row = counts.setdefault(size, {}).setdefault(name, {"boxes": 0, "found": 0, "predicted": 0, "right": 0})
            row[key] += 1
            row["found" if key == "boxes" else "right"] += hit

    for image in images:
        for label in annotated.names:
            if label not in annotated(image.name):
                continue
            mask = label_mask(image.detections, label) & (image.detections.scores >= thresholds.get(label, 1.0))
            truth = np.array([gt == label for gt in image.gt_labels], dtype=bool)
            gt_xyxy, pred_xyxy = image.gt_xyxy[truth], image.detections.xyxy[mask]
            pred_to_gt, found = match_at_iou(pred_xyxy, image.detections.scores[mask], gt_xyxy)
            for box, hit in zip(gt_xyxy, found, strict=True):
                add(box_size_name(box), label, "boxes", bool(hit))
            for box, gt in zip(pred_xyxy, pred_to_gt, strict=True):
                add(box_size_name(box), label, "predicted", bool(gt >= 0))
    order = ("small", "medium", "large")
    result = {}
    for size in sorted(counts, key=order.index):
        rows = {name: counts[size][name] for name in [*annotated.names, "all"] if name in counts[size]}
        for row in rows.values():
            row["recall"] = row["found"] / row["boxes"] if row["boxes"] else None
            row["precision"] = row["right"] / row["predicted"] if row["predicted"] else None
        result[size] = rows
    return result


def false_positives(images: Sequence[ImageResult], annotated: Annotation, thresholds: dict[str, float]) -> list[dict]:
    """The highest-scoring boxes AP50 counts as false, one per image, worst first."""
    found = []
    for image in images:
        for label in annotated.names:
            if label not in annotated(image.name):
                continue
            scores, correct, _ = label_matches(image, label)
            boxes = image.detections.xyxy[label_mask(image.detections, label)]
            for box, score, right in zip(boxes, scores, correct[:, 0], strict=True):
                if not right:
                    found.append(
                        {
                            "image": image.name,
                            "label": label,
                            "score": float(score),
                            "box": [round(float(v), 1) for v in box],
                            "above_threshold": bool(score >= thresholds.get(label, 1.0)),
                        }
                    )
    return _one_per_image(sorted(found, key=lambda f: -f["score"]))


def false_negatives(images: Sequence[ImageResult], thresholds: dict[str, float]) -> list[dict]:
    """The largest ground-truth boxes no box of their label finds at its threshold, one per image, worst first.

    `best_score` is the best score any box of the label reached on it (IoU 0.5) below the threshold:
    a miss that a lower threshold would catch reads differently from one the model never saw.
    """
    missed = []
    for image in images:
        for label in sorted(set(image.gt_labels)):
            mask = label_mask(image.detections, label)
            scores, boxes = image.detections.scores[mask], image.detections.xyxy[mask]
            truth = np.array([gt == label for gt in image.gt_labels], dtype=bool)
            above = scores >= thresholds.get(label, 1.0)
            _, found = match_at_iou(boxes[above], scores[above], image.gt_xyxy[truth])
            overlap = box_iou(image.gt_xyxy[truth], boxes) >= IOU
            for index in np.flatnonzero(~found):
                box = image.gt_xyxy[truth][index]
                near = scores[overlap[index]]
                missed.append(
                    {
                        "image": image.name,
                        "label": label,
                        "box": [round(float(v), 1) for v in box],
                        "area": round(float((box[2] - box[0]) * (box[3] - box[1])), 1),
                        "best_score": float(near.max()) if len(near) else None,
                    }
                )
    return _one_per_image(sorted(missed, key=lambda m: -m["area"]))


def _one_per_image(entries: Iterable[dict]) -> list[dict]:
    """The first `GALLERY_SIZE` entries from distinct images: one image's many misses would fill a gallery."""
    seen, picked = set(), []
    for entry in entries:
        if entry["image"] not in seen:
            seen.add(entry["image"])
            picked.append(entry)
        if len(picked) == GALLERY_SIZE:
            break
    return picked


def report_data(
    result: dict, images: Sequence[ImageResult], annotated: Annotation, longest_side: dict[str, int]
) -> dict:
    """The numbers this page adds to the evaluate JSON, from the same pass and the same thresholds."""
    thresholds = result["thresholds"]
    chosen = {k: v["threshold"] for k, v in result.get("threshold_choice", {}).get("labels", {}).items()}
    operating = {}
    for label in result["all"]["labels"]:
        curve = pr_curve(annotating(images, annotated, label), label)
        if curve is not None:
            operating[label] = {"shipped": curve.at(thresholds.get(label, 1.0))}
            if label in chosen:
                operating[label]["chosen"] = curve.at(chosen[label])
    by_size: dict[str, list[ImageResult]] = {}
    for image in images:
        by_size.setdefault(image_size_name(longest_side[image.name]), []).append(image)
    flagged = flagged_types(images, thresholds, read_rules(result.get("fusion", {})))  # as `summarise` counted
    order = [image_size_name(edge) for edge in (0, *IMAGE_SIZE_EDGES)]
    return {
        "iou": IOU,
        "operating_points": operating,
        "confusion": confusion_matrix(images, annotated, thresholds),
        "image_size": {name: scope_metrics(by_size[name], annotated, flagged) for name in order if name in by_size},
        "box_size": box_size_rates(images, annotated, thresholds),
        "false_positives": false_positives(images, annotated, thresholds),
        "false_negatives": false_negatives(images, thresholds),
    }


# --- figures ---------------------------------------------------------------------------------------


def pr_figure(result: dict, images: Sequence[ImageResult], annotated: Annotation) -> Figure:
    """One precision-recall panel per measured label, AP50 from the JSON in the title, thresholds marked."""
    labels = [label for label, m in result["all"]["labels"].items() if m["boxes"]]
    chosen = {k: v["threshold"] for k, v in result.get("threshold_choice", {}).get("labels", {}).items()}
    figure = Figure(figsize=(3.2 * max(len(labels), 1), 3.4), layout="constrained")
    axes = figure.subplots(1, max(len(labels), 1), squeeze=False)[0]
    for ax, label in zip(axes, labels, strict=False):
        curve = pr_curve(annotating(images, annotated, label), label)
        ax.plot(curve.recall, curve.precision, color="#1f77b4", lw=1.5)
        marks = [("shipped", result["thresholds"].get(label, 1.0), "o", "#d62728")]
        if label in chosen:
            marks.append(("chosen", chosen[label], "s", "#2ca02c"))
        for name, threshold, marker, colour in marks:
            point = curve.at(threshold)
            if point["boxes"]:
                ax.plot(point["recall"], point["precision"], marker, color=colour, ms=7, label=f"{name} {threshold:g}")
            else:
                ax.plot([], [], marker, color=colour, label=f"{name} {threshold:g} (no box)")
        m = result["all"]["labels"][label]
        ax.set_title(f"{label}\nAP50 {m['ap50']:.3f} ({m['boxes']} boxes)", fontsize=9)
        ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    return figure


def confusion_figure(confusion: dict) -> Figure:
    """The confusion matrix as a heat map, each row normalised so rare labels stay readable; counts printed."""
    matrix = np.array(confusion["matrix"], dtype=np.float64)
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    figure = Figure(figsize=(6, 5), layout="constrained")
    ax = figure.subplots()
    ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ticks = range(len(confusion["axis"]))
    ax.set_xticks(ticks, confusion["axis"], rotation=45, ha="right", fontsize=8)
    ax.set_yticks(ticks, confusion["axis"], fontsize=8)
    ax.set(xlabel="predicted", ylabel="ground truth", title="boxes at the shipped thresholds, IoU 0.5")
    for (row, column), count in np.ndenumerate(matrix):
        if count:
            colour = "white" if shares[row, column] > 0.5 else "black"
            ax.text(column, row, f"{int(count)}", ha="center", va="center", fontsize=8, color=colour)
    return figure


def figure_uri(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def gallery_tile(image: ImageResult, path: Path, entry: dict, thresholds: dict[str, float]) -> str:
    """The photo with every ground-truth box and every box kept at the thresholds; the entry's box drawn thick."""
    pixels = load_image_file(path).pixels
    scale = TILE_SIDE / max(pixels.shape[:2])
    pixels = cv2.resize(pixels, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    kept = image.detections.with_min_scores(thresholds)
    boxes = [(box, GT_COLOUR, 1) for box in image.gt_xyxy] + [(box, PRED_COLOUR, 1) for box in kept.xyxy]
    colour = PRED_COLOUR if "score" in entry else GT_COLOUR
    boxes.append((np.array(entry["box"]), colour, 3))
    for box, colour, width in boxes:
        x1, y1, x2, y2 = (int(round(v * scale)) for v in box)
        cv2.rectangle(pixels, (x1, y1), (x2, y2), colour, width)
    ok, jpeg = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 85])
    if not ok:
        raise ValueError(f"could not encode {path}")
    return "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode()


# --- the page ----------------------------------------------------------------------------------------


def _display(value: object) -> str:
    """How the page shows a number; tests/test_report.py formats the JSON the same way to compare."""
    if value is None:
        return "–"
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"not a number: {value!r}")
    return str(value) if isinstance(value, int) else f"{value:.3f}"


class Page:
    """Builds the HTML; `cell` is the only way a number enters a table, so each one names its JSON path."""

    def __init__(self, blocks: dict[str, dict]) -> None:
        self.blocks = blocks
        self.parts: list[str] = []

    def cell(self, block: str, *path: str) -> str:
        value = at(self.blocks[block], path)
        return f'<td class="n" data-json="{html.escape("/".join([block, *path]))}">{_display(value)}</td>'

    def add(self, text: str) -> None:
        self.parts.append(text)

    def table(self, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
        """`rows` hold ready cells: text cells from `text`, numbers from `cell`."""
        head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
        body = "".join(f"<tr>{''.join(row)}</tr>" for row in rows)
        self.add(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def text(value: str) -> str:
    return f"<td>{html.escape(value)}</td>"


def _scope_tables(page: Page, block: str, scopes: Sequence[tuple[str, tuple[str, ...]]], title: str) -> None:
    """AP per label and image-level rates per problem for each scope (a path into `block` to a scope_metrics dict)."""
    rows = []
    for name, path in scopes:
        scope = at(page.blocks[block], path)
        for label in scope["labels"]:
            labels = (*path, "labels", label)
            rows.append(
                [
                    text(name),
                    text(label),
                    page.cell(block, *labels, "boxes"),
                    page.cell(block, *labels, "ap50"),
                    page.cell(block, *labels, "ap50_95"),
                ]
            )
        rows.append(
            [text(name), text("mean"), "<td>", page.cell(block, *path, "map50"), page.cell(block, *path, "map50_95")]
        )
    page.add(f"<h3>{html.escape(title)}: boxes</h3>")
    page.table(["scope", "label", "boxes", "AP50", "AP50-95"], rows)
    rows = []
    for name, path in scopes:
        scope = at(page.blocks[block], path)
        for problem in scope["problems"]:
            rows.append([text(name), text(problem), *_rate_cells(page, block, (*path, "problems", problem))])
    page.add(f"<h3>{html.escape(title)}: photos, at the shipped thresholds</h3>")
    page.table(_RATE_HEADER, rows)


_RATE_KEYS = ("recall", "flagged_positives", "positives", "false_alarm_rate", "flagged_negatives", "negatives")
_RATE_HEADER = ["scope", "problem", "recall", "flagged", "positives", "false-alarm rate", "flagged", "negatives"]


def _rate_cells(page: Page, block: str, path: tuple[str, ...]) -> list[str]:
    return [page.cell(block, *path, key) for key in _RATE_KEYS]


def at(value: object, path: Sequence[str]) -> object:
    """Follow a `data-json` path (list items by their index) into a JSON value."""
    for key in path:
        value = value[int(key)] if isinstance(value, list) else value[key]
    return value


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
.gallery { display: flex; flex-wrap: wrap; gap: 0.8em; }
figure { margin: 0; width: 360px; font-size: 0.8em; }
figure img { width: 100%; }
.swatch { display: inline-block; width: 1.2em; height: 0.8em; margin: 0 0.3em 0 1em; vertical-align: middle; }
"""


def render(result: dict, extra: dict, pr_uri: str, confusion_uri: str, tiles: dict[str, list[tuple[dict, str]]]) -> str:
    """The page: every number from `result` (block "metrics") or `extra` (block "report")."""
    page = Page({"metrics": result, "report": extra})
    title = f"envwatch evaluation: {result['model']} on {result['split']}"
    page.add(f"<h1>{html.escape(title)}</h1>")
    page.add(
        f"<p>Model file <code>{html.escape(result['model_path'])}</code> on "
        f"{html.escape(result.get('runtime', 'onnxruntime'))}; {_display(result['images'])} images of "
        f"the {html.escape(result['split'])} split. Each label counts only on the sources that annotate it.</p>"
    )
    page.add("<h2>Thresholds</h2>")
    chosen = result.get("threshold_choice", {}).get("labels", {})
    rows = []
    for label in result["thresholds"]:
        row = [text(label), page.cell("metrics", "thresholds", label)]
        row.append(
            page.cell("metrics", "threshold_choice", "labels", label, "threshold") if label in chosen else "<td>"
        )
        rows.append(row)
    page.table(["label", "shipped", f"chosen on {result['split']}" if chosen else "chosen (not asked)"], rows)

    page.add("<h2>Precision and recall per label (IoU 0.5, all sources annotating the label)</h2>")
    page.add(f'<img alt="precision-recall curves" src="{pr_uri}">')
    rows = []
    for label, points in extra["operating_points"].items():
        row = [text(label), page.cell("metrics", "all", "labels", label, "ap50")]
        for which in ("shipped", "chosen"):
            if which in points:
                base = ("operating_points", label, which)
                row += [page.cell("report", *base, "precision"), page.cell("report", *base, "recall")]
            else:
                row += ["<td>", "<td>"]
        rows.append(row)
    page.table(
        ["label", "AP50", "precision (shipped)", "recall (shipped)", "precision (chosen)", "recall (chosen)"], rows
    )

    page.add("<h2>Confusion matrix (boxes, IoU 0.5, shipped thresholds)</h2>")
    page.add(f'<img alt="confusion matrix" src="{confusion_uri}">')
    axis = extra["confusion"]["axis"]
    rows = [
        [text(truth), *(page.cell("report", "confusion", "matrix", str(r), str(c)) for c in range(len(axis)))]
        for r, truth in enumerate(axis)
    ]
    page.table(["ground truth \\ predicted", *axis], rows)

    page.add("<h2>Per data source</h2>")
    sources = [(source, ("sources", source)) for source in result["sources"]] + [("all", ("all",))]
    _scope_tables(page, "metrics", sources, "Per source")
    rows = []
    if result.get("burning_fire_sources"):
        name = " + ".join(result["burning_fire_sources"]["sources"])
        rows.append([text(name), text("burning"), *_rate_cells(page, "metrics", ("burning_fire_sources",))])
    if result.get("garbage_cn_burning_false_alarm"):
        cells = _rate_cells(page, "metrics", ("garbage_cn_burning_false_alarm",))
        rows.append([text("garbage-cn (no fire anywhere)"), text("burning"), *cells])
    if rows:
        page.add("<h3>Burning, apart</h3>")
        page.table(_RATE_HEADER, rows)

    page.add("<h2>Per image size (longest side of the original photo)</h2>")
    _scope_tables(page, "report", [(name, ("image_size", name)) for name in extra["image_size"]], "Per image size")

    page.add("<h2>Per box size (COCO areas, shipped thresholds, IoU 0.5)</h2>")
    rows = [
        [
            text(size),
            text(label),
            *(page.cell("report", "box_size", size, label, key) for key in ("boxes", "found", "recall")),
            *(page.cell("report", "box_size", size, label, key) for key in ("predicted", "right", "precision")),
        ]
        for size, labels in extra["box_size"].items()
        for label in labels
    ]
    page.table(
        ["size", "label", "ground-truth boxes", "found", "recall", "predicted boxes", "right", "precision"], rows
    )

    if "threshold_choice" in result:
        page.add(f"<h2>Threshold choice</h2><p>{html.escape(result['threshold_choice']['method'])}.</p>")
        rows = []
        for label, c in chosen.items():
            base = ("threshold_choice", "labels", label)
            if "kept" in c:
                rows.append([text(label), page.cell("metrics", *base, "threshold"), text(f"kept: {c['kept']}")])
            else:
                keys = ("precision", "recall", "f1", "images", "positives")
                rows.append(
                    [
                        text(label),
                        page.cell("metrics", *base, "threshold"),
                        *(page.cell("metrics", *base, k) for k in keys),
                    ]
                )
        page.table(["label", "threshold", "precision", "recall", "F1", "images", "positives"], rows)

    legend = (
        f'<p><span class="swatch" style="background:{HTML_GT_COLOUR}"></span>ground truth'
        f'<span class="swatch" style="background:{HTML_PRED_COLOUR}"></span>prediction at the shipped thresholds; '
        "the box the tile is about is drawn thick.</p>"
    )
    captions = {
        "false_positives": "Worst false positives (highest-scoring boxes matching nothing, at any score)",
        "false_negatives": "Worst false negatives (largest ground-truth boxes missed at the shipped thresholds)",
    }
    for key, heading in captions.items():
        page.add(f'<h2 id="{key}">{html.escape(heading)}</h2>{legend}<div class="gallery" data-gallery="{key}">')
        for index, (entry, uri) in enumerate(tiles[key]):
            if key == "false_positives":
                where = "above" if entry["above_threshold"] else "below"
                caption = f"{entry['label']} {entry['score']:.3f} ({where} its threshold)"
            else:
                best = "no box at IoU 0.5" if entry["best_score"] is None else f"best box {entry['best_score']:.3f}"
                caption = f"missed {entry['label']} ({best})"
            page.add(
                f'<figure data-entry="{index}"><img alt="{html.escape(entry["image"])}" src="{uri}">'
                f"<figcaption>{html.escape(caption)}<br><code>{html.escape(entry['image'])}</code></figcaption></figure>"
            )
        if not tiles[key]:
            page.add("<p>None.</p>")
        page.add("</div>")

    blocks = "".join(
        f'<script type="application/json" id="{name}">{_json_for_script(value)}</script>'
        for name, value in page.blocks.items()
    )
    body = "\n".join(page.parts)
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n{body}\n{blocks}\n</body></html>\n"
    )


def _json_for_script(value: dict) -> str:
    """JSON that cannot close its <script> element early (a file name could hold "</script>")."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c")


def write_report(
    result: dict, images: Sequence[ImageResult], data: Path, out: Path, recipe: Path = DEFAULT_RECIPE
) -> Path:
    """Write `out/index.html` for the evaluation `result` and the per-image results it was computed from.

    Which labels count where comes from the dataset at `data` as in `training.evaluate.evaluate`.
    """
    annotated = dataset_annotation(data, recipe)
    paths = {path.stem: path for path in split_images(data, result["split"])}
    longest = {}
    for image in images:
        with Image.open(paths[image.name]) as opened:
            longest[image.name] = max(opened.size)  # orientation cannot change the longest side
    extra = report_data(result, images, annotated, longest)
    by_name = {image.name: image for image in images}
    tiles = {
        key: [(e, gallery_tile(by_name[e["image"]], paths[e["image"]], e, result["thresholds"])) for e in extra[key]]
        for key in ("false_positives", "false_negatives")
    }
    page = render(
        result,
        extra,
        figure_uri(pr_figure(result, images, annotated)),
        figure_uri(confusion_figure(extra["confusion"])),
        tiles,
    )
    out.mkdir(parents=True, exist_ok=True)
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return index
