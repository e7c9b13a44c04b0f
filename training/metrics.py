"""Detection metrics in plain numpy, computed the way Ultralytics computes them.

Serving has no torch, and the model card's numbers must come from the ONNX file we ship run
through our own runtime, so the metrics cannot come from `yolo val`. They are still defined as
Ultralytics defines them (8.4: `match_predictions`, `ap_per_class`, `compute_ap`) so that our numbers
and the training log's can be compared side by side; a gap between them then means the export or
the runtime changed the model's output, not that the metric differs:

- matching is per label and greedy by score: predictions in descending score order each claim the
  unclaimed ground-truth box they overlap most, separately at every IoU threshold 0.50:0.05:0.95;
- AP is Ultralytics' "101-point interpolation": the precision envelope sampled at recall
  0, 0.01, ..., 1 with `np.interp` and integrated with the trapezoid rule. Like Ultralytics, the
  curve drops to 0 after the last recall reached, so perfect predictions score 0.995, not 1.0
  (the last grid step is half lost); all-point AP would give 1.0 there.
"""

from __future__ import annotations

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
"""AP50 is column 0; AP50-95 is the mean over all ten."""
RECALL_GRID = np.linspace(0.0, 1.0, 101)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in `a` (n, 4) with every box in `b` (m, 4), both x1, y1, x2, y2: shape (n, m)."""
    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4)
    top_left = np.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(bottom_right - top_left, 0, None).prod(axis=2)
    area_a = (a[:, 2:] - a[:, :2]).prod(axis=1)
    area_b = (b[:, 2:] - b[:, :2]).prod(axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter + 1e-9)


def match_greedy(pred_xyxy: np.ndarray, pred_scores: np.ndarray, gt_xyxy: np.ndarray) -> np.ndarray:
    """True-positive flags (n_pred, 10) for one image and one label, rows in the input order.

    A prediction is a true positive at an IoU threshold when, taking predictions best score first,
    it overlaps an unclaimed ground-truth box at least that much; it claims the one it overlaps most.
    """
    correct = np.zeros((len(pred_scores), len(IOU_THRESHOLDS)), dtype=bool)
    if not len(pred_scores) or not len(gt_xyxy):
        return correct
    iou = box_iou(gt_xyxy, pred_xyxy)  # (gt, pred)
    claimed = np.zeros((len(gt_xyxy), len(IOU_THRESHOLDS)), dtype=bool)
    columns = np.arange(len(IOU_THRESHOLDS))
    for j in np.argsort(-np.asarray(pred_scores), kind="stable"):
        if iou[:, j].max() < IOU_THRESHOLDS[0]:
            continue
        available = np.where(claimed, 0.0, iou[:, j, None])
        best = available.argmax(axis=0)
        correct[j] = available[best, columns] >= IOU_THRESHOLDS
        claimed[best, columns] |= correct[j]
    return correct


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under one precision-recall curve (points in descending score order), as Ultralytics' compute_ap."""
    mrec = np.concatenate(([0.0], recall, [recall[-1] if len(recall) else 1.0], [1.0]))
    mpre = np.concatenate(([1.0], precision, [0.0], [0.0]))
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
    return float(np.trapezoid(np.interp(RECALL_GRID, mrec, mpre), RECALL_GRID))


def ap_per_iou(scores: np.ndarray, correct: np.ndarray, n_gt: int) -> np.ndarray | None:
    """AP at each IoU threshold for one label from its pooled predictions; None without ground truth.

    `correct` is `match_greedy`'s output stacked over the images pooled. With no ground-truth box
    AP is undefined (not 0), so the label is left out of the mean rather than dragging it down.
    """
    if n_gt == 0:
        return None
    if not len(scores):
        return np.zeros(len(IOU_THRESHOLDS))
    order = np.argsort(-np.asarray(scores), kind="stable")
    hits = np.asarray(correct, dtype=np.float64)[order]
    tp = hits.cumsum(axis=0)
    fp = (1.0 - hits).cumsum(axis=0)
    recall, precision = tp / n_gt, tp / (tp + fp)
    return np.array([average_precision(recall[:, k], precision[:, k]) for k in range(len(IOU_THRESHOLDS))])


def image_rates(positive: np.ndarray, flagged: np.ndarray) -> dict[str, float | int | None]:
    """Image-level recall and false-alarm rate with their counts; a rate is None when its denominator is 0."""
    positive, flagged = np.asarray(positive, dtype=bool), np.asarray(flagged, dtype=bool)
    positives, negatives = int(positive.sum()), int((~positive).sum())
    flagged_positives, flagged_negatives = int((positive & flagged).sum()), int((~positive & flagged).sum())
    return {
        "recall": flagged_positives / positives if positives else None,
        "false_alarm_rate": flagged_negatives / negatives if negatives else None,
        "positives": positives,
        "negatives": negatives,
        "flagged_positives": flagged_positives,
        "flagged_negatives": flagged_negatives,
    }


def best_f1_threshold(max_scores: np.ndarray, positive: np.ndarray, candidates: np.ndarray) -> dict[str, float | int]:
    """The candidate threshold with the highest image-level F1, the lowest on ties.

    An image is predicted positive when its best score reaches the threshold (`>=`, as
    `Detections.with_min_scores` keeps boxes). Ties go low because, among equally good operating
    points, a missed fire costs an inspector more than one more photo to dismiss.
    """
    max_scores, positive = np.asarray(max_scores, dtype=np.float64), np.asarray(positive, dtype=bool)
    predicted = max_scores[None, :] >= np.asarray(candidates)[:, None]  # (candidates, images)
    tp = (predicted & positive).sum(axis=1)
    fp = (predicted & ~positive).sum(axis=1)
    fn = (~predicted & positive).sum(axis=1)
    f1 = np.where(tp > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    best = int(np.argmax(f1))  # first maximum = lowest threshold
    return {
        "threshold": round(float(candidates[best]), 2),
        "precision": float(tp[best] / (tp[best] + fp[best])) if tp[best] + fp[best] else 0.0,
        "recall": float(tp[best] / (tp[best] + fn[best])) if tp[best] + fn[best] else 0.0,
        "f1": float(f1[best]),
        "images": int(len(positive)),
        "positives": int(positive.sum()),
    }
