"""Evaluation: metrics on cases with known answers, the per-source rules, and `envwatch evaluate` for real.

The metrics are meant to be Ultralytics' own, so besides hand-computed cases they are checked
against Ultralytics' functions on random data; the source rules (which label and problem is
measured where) are checked on synthetic images whose right answer is obvious; and one test runs
the command line on the tiny model and the real val split, as a user would.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from argparse import Namespace
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import yaml

from model.detections import Detections
from model.taxonomy import LABEL_NAMES
from training.dataset import DEFAULT_RECIPE
from training.evaluate import (
    OUTSIDE,
    ImageResult,
    annotated_labels,
    cap_false_alarms,
    capped_choice,
    choose_thresholds,
    main,
    markdown_tables,
    parse_caps,
    recorded_labels,
    summarise,
)
from training.metrics import IOU_THRESHOLDS, ap_per_iou, best_f1_threshold, match_greedy

REPO = Path(__file__).resolve().parents[1]
ANNOTATED = annotated_labels(yaml.safe_load(DEFAULT_RECIPE.read_text()))
BOX = (10.0, 10.0, 60.0, 60.0)
OTHER_BOX = (200.0, 200.0, 250.0, 250.0)
ULTRALYTICS_PERFECT_AP = 0.995
"""Ultralytics' curve drops to 0 after the last recall, so the last of 100 grid steps is half lost."""


def image(
    name: str,
    source: str,
    truth: Sequence[tuple[str, tuple]] = (),
    predicted: Sequence[tuple[str, float, tuple]] = (),
    names: Sequence[str] = LABEL_NAMES,
) -> ImageResult:
    """A synthetic `ImageResult`: `truth` is (label, box) pairs, `predicted` (label, score, box) triples of a
    model with labels `names`."""
    detections = Detections(
        np.array([p[2] for p in predicted]).reshape(-1, 4),
        np.array([p[1] for p in predicted]),
        np.array([names.index(p[0]) for p in predicted]),
        tuple(names),
    )
    gt = np.array([t[1] for t in truth], dtype=np.float64).reshape(-1, 4)
    return ImageResult(f"{source}__test__{name}", source, gt, tuple(t[0] for t in truth), detections)


def shifted(box: tuple, dx: float) -> tuple:
    return (box[0] + dx, box[1], box[2] + dx, box[3])


# --- box level -------------------------------------------------------------------------------------


def test_perfect_predictions_score_ultralytics_maximum() -> None:
    gt = np.array([BOX, OTHER_BOX])
    correct = match_greedy(gt, np.array([0.9, 0.8]), gt)
    assert correct.all()
    ap = ap_per_iou(np.array([0.9, 0.8]), correct, 2)
    np.testing.assert_allclose(ap, ULTRALYTICS_PERFECT_AP, atol=1e-9)


def test_boxes_shifted_below_half_overlap_score_zero() -> None:
    gt = np.array([BOX, OTHER_BOX])
    predicted = np.array([shifted(BOX, 25), shifted(OTHER_BOX, 25)])  # IoU 25*50 / (2*2500 - 1250) = 1/3
    correct = match_greedy(predicted, np.array([0.9, 0.8]), gt)
    assert not correct.any()
    assert ap_per_iou(np.array([0.9, 0.8]), correct, 2).max() == 0.0


def test_hand_computed_precision_recall_case() -> None:
    """2 ground-truth boxes, 3 predictions: hit (0.9), miss (0.8), hit (0.7).

    Recall 0.5, 0.5, 1; precision 1, 0.5, 2/3; envelope 1 up to recall 0.5 and 2/3 beyond, 0 after
    recall 1. Sampled at recall 0, 0.01, ..., 1 (np.interp puts the jump at 0.5 on the right side):
    1 at 0..0.49, 2/3 at 0.50..0.99, 0 at 1.0. Trapezoids of width 0.01: 49 of height 1, one of
    (1 + 2/3) / 2, 49 of 2/3 and one of (2/3 + 0) / 2. (All-point AP would be 0.5 + 0.5 * 2/3.)
    """
    expected = 0.01 * (49 * 1 + (1 + 2 / 3) / 2 + 49 * 2 / 3 + (2 / 3) / 2)
    gt = np.array([BOX, OTHER_BOX])
    predicted = np.array([BOX, (400.0, 400.0, 450.0, 450.0), OTHER_BOX])
    scores = np.array([0.9, 0.8, 0.7])
    correct = match_greedy(predicted, scores, gt)
    assert correct[:, 0].tolist() == [True, False, True]
    assert ap_per_iou(scores, correct, 2)[0] == pytest.approx(expected, abs=1e-12)
    assert expected == pytest.approx(0.828333, abs=1e-6)


def test_greedy_matching_by_score_and_iou_threshold() -> None:
    """The better-scored of two boxes on one object wins; a box with IoU 0.62 counts only up to IoU 0.6."""
    gt = np.array([[0.0, 0.0, 100.0, 100.0]])
    loose = (0.0, 0.0, 100.0, 62.0)  # IoU 0.62
    correct = match_greedy(np.array([gt[0], loose]), np.array([0.5, 0.9]), gt)
    assert correct[1].tolist() == (IOU_THRESHOLDS <= 0.62).tolist()
    assert correct[0].tolist() == (IOU_THRESHOLDS > 0.62).tolist()  # takes the box where the 0.9 one failed


def test_matches_ultralytics_on_random_cases() -> None:
    torch = pytest.importorskip("torch")
    pytest.importorskip("ultralytics")
    from ultralytics.models.yolo.detect import DetectionValidator
    from ultralytics.utils.metrics import ap_per_class, box_iou

    rng = np.random.default_rng(0)
    validator = DetectionValidator()
    for _ in range(20):
        centres = rng.uniform(0, 400, (6, 2))
        gt = np.concatenate([centres, centres + rng.uniform(20, 80, (6, 2))], axis=1)
        jitter = rng.normal(0, 8, (15, 4))
        predicted = gt[rng.integers(0, 6, 15)] + jitter
        predicted[:, 2:] = np.maximum(predicted[:, 2:], predicted[:, :2] + 1)
        scores = rng.uniform(0, 1, 15)
        order = np.argsort(-scores)  # Ultralytics expects predictions best first
        theirs = validator.match_predictions(
            torch.zeros(15), torch.zeros(6), box_iou(torch.tensor(gt), torch.tensor(predicted[order]))
        ).numpy()
        ours = match_greedy(predicted, scores, gt)
        np.testing.assert_array_equal(ours[order], theirs)
        ap_theirs = ap_per_class(ours, scores, np.zeros(15), np.zeros(6))[5][0]
        np.testing.assert_allclose(ap_per_iou(scores, ours, 6), ap_theirs, atol=1e-9)


def test_ap_without_predictions_or_without_ground_truth() -> None:
    assert ap_per_iou(np.zeros(0), np.zeros((0, 10), dtype=bool), 3).max() == 0.0  # everything missed
    assert ap_per_iou(np.array([0.9]), np.zeros((1, 10), dtype=bool), 0) is None  # nothing to find: undefined


def test_unlabelled_smoke_on_fire_continuous_does_not_count() -> None:
    """fire-continuous never labels smoke, so its (possibly right) smoke boxes are no false positives."""
    labelled = image("a", "fire-smoke-8", [("smoke", BOX)], [("smoke", 0.5, BOX)])
    alone = summarise([labelled], ANNOTATED, {"smoke": 0.25, "fire": 0.25})
    smoky = [image(f"s{i}", "fire-continuous", [("fire", OTHER_BOX)], [("smoke", 0.9, BOX)]) for i in range(5)]
    pooled = summarise([labelled, *smoky], ANNOTATED, {"smoke": 0.25, "fire": 0.25})
    assert pooled["all"]["labels"]["smoke"] == alone["all"]["labels"]["smoke"]
    assert pooled["all"]["labels"]["smoke"]["ap50"] == pytest.approx(ULTRALYTICS_PERFECT_AP)
    assert "smoke" not in pooled["sources"]["fire-continuous"]["labels"]  # unlabelled there: not measured
    assert pooled["sources"]["fire-continuous"]["labels"]["fire"]["ap50"] == 0.0  # fire missed there


def test_source_mean_is_over_the_labels_it_annotates() -> None:
    images = [
        image(
            "a", "garbage-cn", [("overflowing_garbage", BOX)], [("overflowing_garbage", 0.9, BOX), ("fire", 0.9, BOX)]
        ),
        image("b", "garbage-cn", [("garbage_bin", OTHER_BOX)], []),
    ]
    result = summarise(images, ANNOTATED, {})
    metrics = result["sources"]["garbage-cn"]
    assert set(metrics["labels"]) == set(LABEL_NAMES)  # garbage-cn leaves nothing unlabelled
    assert metrics["labels"]["exposed_garbage"] == {"ap50": None, "ap50_95": None, "boxes": 0}
    assert metrics["labels"]["fire"] == {"ap50": None, "ap50_95": None, "boxes": 0}  # no fire box: no AP
    assert result["all"]["labels"]["fire"]["boxes"] == 0
    assert metrics["map50"] == pytest.approx(ULTRALYTICS_PERFECT_AP / 2)  # overflowing perfect, bin missed


# --- image level -----------------------------------------------------------------------------------


def test_image_level_recall_and_false_alarms() -> None:
    thresholds = {"fire": 0.5, "smoke": 0.5, "overflowing_garbage": 0.5, "exposed_garbage": 0.5, "garbage_bin": 0.5}
    images = [
        image("hit", "fire-smoke-8", [("fire", BOX)], [("smoke", 0.6, OTHER_BOX)]),  # smoke flags burning too
        image("low", "fire-smoke-8", [("smoke", BOX)], [("smoke", 0.4, BOX)]),  # below threshold: missed
        image("calm", "fire-smoke-8", [], [("fire", 0.7, BOX)]),  # false alarm
        image("quiet", "fire-smoke-8", [], [("fire", 0.3, BOX)]),
        image("fc", "fire-continuous", [("fire", BOX)], [("fire", 0.8, BOX)]),
        image("g1", "garbage-cn", [("garbage_bin", BOX)], [("fire", 0.9, BOX), ("garbage_bin", 0.9, BOX)]),
        image("g2", "garbage-cn", [("overflowing_garbage", BOX)], [("overflowing_garbage", 0.9, BOX)]),
    ]
    result = summarise(images, ANNOTATED, thresholds)
    burning = result["sources"]["fire-smoke-8"]["problems"]["burning"]
    assert burning == {
        "recall": 0.5,
        "false_alarm_rate": 0.5,
        "positives": 2,
        "negatives": 2,
        "flagged_positives": 1,
        "flagged_negatives": 1,
    }
    assert result["burning_fire_sources"]["sources"] == ["fire-continuous", "fire-smoke-8"]
    assert result["burning_fire_sources"]["flagged_positives"] == 2
    assert result["burning_fire_sources"]["positives"] == 3
    # Pooled burning also counts garbage-cn photos as negatives (they show no fire): g1 is a false alarm.
    pooled = result["all"]["problems"]["burning"]
    assert (pooled["positives"], pooled["negatives"], pooled["flagged_negatives"]) == (3, 4, 2)
    assert set(result["sources"]["garbage-cn"]["problems"]) == {"overflowing_garbage", "exposed_garbage", "burning"}
    assert result["garbage_cn_burning_false_alarm"]["false_alarm_rate"] == 0.5
    assert result["garbage_cn_burning_false_alarm"]["recall"] is None
    overflowing = result["all"]["problems"]["overflowing_garbage"]
    assert (overflowing["positives"], overflowing["negatives"], overflowing["recall"]) == (1, 6, 1.0)
    assert "| garbage-cn (no fire anywhere) | burning | – | 0.500 (1/2) |" in markdown_tables(
        {"model": "t", "split": "test", "images": len(images), "thresholds": thresholds, **result}
    )


# --- threshold choice ------------------------------------------------------------------------------


def test_best_f1_threshold_picks_lowest_of_the_best() -> None:
    """F1 is 6/8 up to 0.30, 6/7 on (0.30, 0.60], lower above: the lowest candidate of the best range is 0.31."""
    max_scores = np.array([0.9, 0.7, 0.6, 0.65, 0.3, 0.0])
    positive = np.array([True, True, True, False, False, False])
    choice = best_f1_threshold(max_scores, positive, np.round(np.arange(0.05, 0.9001, 0.01), 2))
    assert choice["threshold"] == 0.31
    assert choice["f1"] == pytest.approx(6 / 7)
    assert (choice["precision"], choice["recall"]) == (0.75, 1.0)


def test_choose_thresholds_per_label_on_annotating_sources() -> None:
    images = [
        image("p1", "fire-smoke-8", [("fire", BOX)], [("fire", 0.9, BOX)]),
        image("p2", "fire-smoke-8", [("fire", BOX)], [("fire", 0.7, BOX), ("fire", 0.2, OTHER_BOX)]),
        image("p3", "fire-continuous", [("fire", BOX)], [("fire", 0.6, BOX), ("smoke", 0.95, BOX)]),
        image("n1", "fire-smoke-8", [("smoke", BOX)], [("fire", 0.65, BOX)]),
        image("n2", "fire-smoke-8", [], [("fire", 0.3, BOX)]),
        image("n3", "fire-smoke-8", []),
        image("g", "garbage-cn", [("garbage_bin", BOX)], [("fire", 0.99, BOX)]),  # a fire false alarm
    ]
    chosen = choose_thresholds(images, ANNOTATED, {"smoke": 0.4, "garbage_bin": 0.3}, LABEL_NAMES)
    # fire: g's 0.99 counts against every threshold; best F1 (0.75) is on (0.30, 0.60], lowest 0.31
    assert chosen["fire"]["threshold"] == 0.31
    assert chosen["fire"]["images"] == 7
    assert chosen["fire"]["f1"] == pytest.approx(0.75)
    # smoke: the fire-continuous 0.95 box is not a false positive (unlabelled there); nothing finds n1's smoke
    assert chosen["smoke"] == {"threshold": 0.4, "kept": "no candidate finds any of the 1 smoke images"}
    assert chosen["overflowing_garbage"]["kept"] == "no overflowing_garbage image among 7"
    assert chosen["garbage_bin"]["kept"] == "no candidate finds any of the 1 garbage_bin images"


def burning_case(worst_hard_negative: float = 0.5) -> list[ImageResult]:
    return [
        image("p1", "fire-smoke-8", [("fire", BOX)], [("fire", 0.9, BOX)]),
        image("p2", "fire-smoke-8", [("fire", BOX)], [("fire", 0.6, BOX)]),
        image("p3", "fire-smoke-8", [("fire", BOX)], [("fire", 0.3, BOX)]),
        image("n1", "fire-smoke-8", [], [("fire", worst_hard_negative, BOX)]),  # hard negatives: no fire, no smoke
        image("n2", "fire-smoke-8", [], [("smoke", 0.4, BOX)]),
        *(image(f"n{i}", "fire-smoke-8") for i in range(3, 6)),
        image("g", "garbage-cn", [("garbage_bin", BOX)], [("fire", 0.95, BOX)]),  # a false alarm, but not hard
    ]


def test_false_alarm_cap_raises_burning_thresholds_jointly() -> None:
    images = burning_case()
    chosen = choose_thresholds(images, ANNOTATED, {"smoke": 0.4}, ("fire", "smoke"))
    assert chosen["fire"]["threshold"] == 0.05  # best fire F1 alone: 0.75 up to 0.30, lowest wins
    # at fire 0.05 / smoke 0.4, n1 and n2 are flagged: 2 of 5 hard negatives, above a 0.1 cap (at most 0)
    capped = cap_false_alarms(images, ANNOTATED, {"fire": 0.05, "smoke": 0.4}, "burning", 0.1)
    assert capped is not None
    assert capped["thresholds"] == {"fire": 0.51, "smoke": 0.41}  # lowest pair flagging neither n1 nor n2
    assert (capped["met"], capped["hard_negatives"], capped["flagged_before"]) == (True, 5, 2)
    assert capped["flagged_hard_negatives"] == 0
    assert capped["recall"] == pytest.approx(2 / 3)  # p3 (0.3) is lost
    assert capped["f1"] == pytest.approx(4 / 6)  # g's 0.95 stays a false positive at any grid threshold

    labels, record = capped_choice(images, ANNOTATED, chosen, {"burning": 0.1})
    assert labels["fire"]["threshold"] == 0.51 and labels["fire"]["capped_by"] == "burning"
    assert labels["fire"]["recall"] == pytest.approx(2 / 3)
    assert record["burning"]["thresholds"] == capped["thresholds"]


def test_cap_already_kept_moves_nothing_and_an_unreachable_cap_says_so() -> None:
    assert cap_false_alarms(burning_case(), ANNOTATED, {"fire": 0.6, "smoke": 0.5}, "burning", 0.1) is None
    # n1 at 0.95 is above every candidate threshold: the cap cannot be met; fewest false alarms wins
    capped = cap_false_alarms(burning_case(0.95), ANNOTATED, {"fire": 0.05, "smoke": 0.4}, "burning", 0.1)
    assert capped is not None and not capped["met"]
    assert capped["flagged_hard_negatives"] == 1


def test_outside_photos_join_the_hard_negatives_of_every_capped_problem() -> None:
    """Photos from outside the dataset (a probe's calibration half) make a kept cap bite."""
    outside = [image("o1", OUTSIDE, [], [("smoke", 0.705, BOX)]), image("o2", OUTSIDE)]
    assert cap_false_alarms(burning_case(), ANNOTATED, {"fire": 0.6, "smoke": 0.5}, "burning", 0.1) is None
    capped = cap_false_alarms(burning_case(), ANNOTATED, {"fire": 0.6, "smoke": 0.5}, "burning", 0.1, outside)
    assert capped is not None and capped["met"]
    assert (capped["hard_negatives"], capped["outside_negatives"], capped["flagged_before"]) == (7, 2, 1)
    assert capped["thresholds"] == {"fire": 0.51, "smoke": 0.71}  # o1's smoke (0.705) no longer flags
    assert capped["recall"] == pytest.approx(2 / 3)


def test_extra_negatives_need_the_threshold_choice(capsys: pytest.CaptureFixture[str]) -> None:
    args = Namespace(split="val", limit=None, choose_thresholds=False, extra_negatives=Path("probe"), out=None)
    assert main(args) == 2
    assert "--choose-thresholds" in capsys.readouterr().err


def test_false_alarm_cap_arguments() -> None:
    assert parse_caps(None) == {"burning": 0.1}
    assert parse_caps(["none"]) == {}
    assert parse_caps(["burning=0.05", "exposed_garbage=0.2"]) == {"burning": 0.05, "exposed_garbage": 0.2}
    for bad in (["fire=0.1"], ["burning=2"], ["burning"], ["burning=x"]):
        with pytest.raises(ValueError):
            parse_caps(bad)


# --- merged datasets: extra labels, annotated per photo -------------------------------------------------

MERGED_NAMES = (*LABEL_NAMES, "illegal_structure")
SHED = "illegal_structure"


def merged(images: Sequence[ImageResult], reviewed: dict[str, Sequence[str]]):
    """The per-photo annotation a merge record gives: shared photos by their source, reviewed ones as listed."""
    shared = {i.name: sorted(ANNOTATED(i.name)) for i in images if i.source != "reviews"}
    return recorded_labels(MERGED_NAMES, {**shared, **{f"reviews__test__{k}": v for k, v in reviewed.items()}})


def test_extra_label_counts_only_on_photos_annotating_it() -> None:
    """A shed box on a shared photo is no false positive (no shared source annotates sheds), nor a fire box on a
    reviewed photo where only sheds were looked at; a reviewed photo annotating sheds without one is a negative."""
    images = [
        image(
            "g",
            "garbage-cn",
            [("garbage_bin", BOX)],
            [("garbage_bin", 0.9, BOX), (SHED, 0.95, OTHER_BOX)],
            MERGED_NAMES,
        ),  # fmt: skip
        image("r1", "reviews", [(SHED, BOX)], [(SHED, 0.8, BOX), ("fire", 0.97, OTHER_BOX)], MERGED_NAMES),
        image("r2", "reviews", [(SHED, OTHER_BOX)], [(SHED, 0.3, OTHER_BOX)], MERGED_NAMES),
        image("r3", "reviews", [], [(SHED, 0.6, BOX)], MERGED_NAMES),  # a dismissed shed: annotates sheds, none there
        image("r4", "reviews", [], [("fire", 0.2, BOX)], MERGED_NAMES),  # a dismissed fire: annotates fire only
    ]
    annotated = merged(images, {"r1": [SHED], "r2": [SHED], "r3": [SHED], "r4": ["fire"]})
    thresholds = {**{label: 0.5 for label in LABEL_NAMES}, SHED: 0.5}
    result = summarise(images, annotated, thresholds)

    shed = result["all"]["labels"][SHED]
    assert shed["boxes"] == 2 and 0 < shed["ap50"] < ULTRALYTICS_PERFECT_AP  # r3's 0.6 outranks r2's hit
    assert list(result["sources"]["reviews"]["labels"]) == ["fire", SHED]  # in the dataset's label order
    assert SHED not in result["sources"]["garbage-cn"]["labels"]
    assert result["all"]["labels"]["fire"]["boxes"] == 0  # r1's 0.97 fire box counts nowhere
    rates = result["all"]["problems"][SHED]  # r1 flagged, r2 (0.3) missed, r3 a false alarm; g does not count
    assert (rates["positives"], rates["flagged_positives"], rates["negatives"], rates["flagged_negatives"]) == (
        2, 1, 1, 1,
    )  # fmt: skip
    burning = result["all"]["problems"]["burning"]  # g and r4 measure burning; r1's fire box is not seen
    assert (burning["negatives"], burning["flagged_negatives"]) == (2, 0)
    assert list(result["all"]["problems"]) == ["overflowing_garbage", "exposed_garbage", "burning", SHED]

    # A model without the label (v1 measured on a merged dataset) misses every shed on the same photos.
    blind = [ImageResult(i.name, i.source, i.gt_xyxy, i.gt_labels, Detections.empty(LABEL_NAMES)) for i in images]
    assert summarise(blind, annotated, thresholds)["all"]["labels"][SHED] == {"ap50": 0.0, "ap50_95": 0.0, "boxes": 2}


def test_thresholds_for_a_merged_dataset_keep_the_burning_cap() -> None:
    """Reviewed photos with a dismissed fire are burning's hard negatives; a reviewed photo that annotates only
    sheds is not, however high its fire box scores, or no threshold could keep the cap."""
    images = [
        image("p1", "reviews", [("fire", BOX)], [("fire", 0.9, BOX)], MERGED_NAMES),
        image("p2", "reviews", [("fire", BOX)], [("fire", 0.6, BOX)], MERGED_NAMES),
        image("p3", "reviews", [("fire", BOX)], [("fire", 0.3, BOX)], MERGED_NAMES),
        image("d1", "reviews", [], [("fire", 0.5, BOX)], MERGED_NAMES),
        image("d2", "reviews", [], [("fire", 0.2, BOX)], MERGED_NAMES),
        image("d3", "reviews", [], [], MERGED_NAMES),
        image("s1", "reviews", [(SHED, BOX)], [(SHED, 0.7, BOX), ("fire", 0.99, OTHER_BOX)], MERGED_NAMES),
        image("s2", "reviews", [], [(SHED, 0.4, BOX)], MERGED_NAMES),
    ]
    reviewed = {name: ["fire"] for name in ("p1", "p2", "p3", "d1", "d2", "d3")}
    annotated = merged(images, {**reviewed, "s1": [SHED], "s2": [SHED]})
    chosen = choose_thresholds(images, annotated, {"smoke": 0.4}, MERGED_NAMES)
    # fire alone: F1 6/7 on (0.20, 0.30] (all three found, d1 flagged); the 0.99 on s1 would make it 6/8
    assert chosen["fire"]["threshold"] == 0.21 and chosen["fire"]["images"] == 6
    assert chosen["fire"]["f1"] == pytest.approx(6 / 7)
    assert chosen[SHED]["threshold"] == 0.41 and chosen[SHED]["images"] == 2  # between s2's 0.4 and s1's 0.7
    assert chosen["smoke"] == {"threshold": 0.4, "kept": "no smoke image among 0"}

    labels, record = capped_choice(images, annotated, chosen, {"burning": 0.1})
    # d1 (0.5) is 1 of 3 hard negatives at 0.21: over the cap; fire moves above it, p3 is lost
    assert record["burning"]["thresholds"] == {"fire": 0.51, "smoke": 0.05}
    assert (record["burning"]["met"], record["burning"]["hard_negatives"], record["burning"]["images"]) == (True, 3, 6)
    assert labels["fire"]["threshold"] == 0.51 and labels["fire"]["recall"] == pytest.approx(2 / 3)
    assert labels[SHED] == chosen[SHED]  # the cap on burning leaves other labels alone


def test_annotation_rules_name_images_they_do_not_cover() -> None:
    assert ANNOTATED("fire-continuous__train__x") == frozenset(LABEL_NAMES) - {"smoke"}
    with pytest.raises(ValueError, match="not in the dataset recipe"):
        ANNOTATED("elsewhere__val__x")
    with pytest.raises(ValueError, match="reviews.json"):
        recorded_labels(MERGED_NAMES, {"reviews__val__a": [SHED]})("reviews__val__b")
    with pytest.raises(ValueError, match="not in the dataset recipe"):
        summarise([image("a", "elsewhere")], ANNOTATED, {})


def test_thresholds_are_never_chosen_on_test(capsys: pytest.CaptureFixture[str]) -> None:
    args = Namespace(model=None, data=Path("unused"), split="test", out=Path("x.json"), choose_thresholds=True)
    assert main(args) == 2
    assert "val only" in capsys.readouterr().err


# --- the command, for real -------------------------------------------------------------------------


def test_envwatch_evaluate_on_val(tiny_onnx: Path, built_dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval" / "val.json"
    command = [sys.executable, "-m", "inference_api.cli", "evaluate", "--model", str(tiny_onnx)]
    command += ["--data", str(built_dataset), "--split", "val", "--out", str(out), "--choose-thresholds"]
    run = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "| source | label | boxes | AP50 | AP50-95 |" in run.stdout

    result = json.loads(out.read_text())
    val_images = sorted((built_dataset / "images" / "val").iterdir())
    assert (result["model"], result["split"], result["images"]) == ("tiny-test", "val", len(val_images))
    names = "\n".join(sorted(p.stem for p in val_images))
    assert result["image_set"] == hashlib.sha256(names.encode()).hexdigest()[:12]
    assert set(result["sources"]) == {
        "garbage-cn",
        "fire-smoke-8",
        "fire-continuous",
        "fire-smoke-pd",
        "fire-scenes-cair",
    }
    assert sum(s["images"] for s in result["sources"].values()) == result["images"] == result["all"]["images"]
    assert set(result["sources"]["fire-continuous"]["labels"]) == set(LABEL_NAMES) - {"smoke"}
    for name, scope in [*result["sources"].items(), ("all", result["all"])]:
        for metrics in scope["labels"].values():
            assert (metrics["boxes"] == 0) == (metrics["ap50"] is None)  # AP exactly where there are boxes
            if metrics["ap50"] is None:
                continue
            assert 0.0 <= metrics["ap50_95"] <= metrics["ap50"] + 1e-12 <= 1.0 + 1e-12  # a mean of 10 floats
        if scope["map50"] is None:  # a source of photo-level labels only: no box to measure
            assert all(m["ap50"] is None for m in scope["labels"].values()), name
        else:
            assert 0.0 <= scope["map50_95"] <= scope["map50"] + 1e-12 <= 1.0 + 1e-12
        for rates in scope["problems"].values():
            counted = rates["positives"] + rates["negatives"]
            assert counted == scope["images"] if name != "all" else counted <= scope["images"]
            assert 0 <= rates["flagged_positives"] <= rates["positives"]
            assert 0 <= rates["flagged_negatives"] <= rates["negatives"]
            assert rates["recall"] is None or 0.0 <= rates["recall"] <= 1.0
    smoke = [s["labels"]["smoke"]["boxes"] for s in result["sources"].values() if "smoke" in s["labels"]]
    assert result["all"]["labels"]["smoke"]["boxes"] == sum(smoke)  # fire-continuous's unlabelled smoke not counted
    assert "smoke" not in result["sources"]["fire-continuous"]["labels"] and len(smoke) >= 2
    no_fire = result["garbage_cn_burning_false_alarm"]
    assert no_fire["negatives"] == result["sources"]["garbage-cn"]["images"] and no_fire["positives"] == 0

    thresholds = json.loads((out.parent / "val.thresholds.json").read_text())
    assert list(thresholds) == list(LABEL_NAMES)
    for label, value in thresholds.items():
        assert value == result["threshold_choice"]["labels"][label]["threshold"]
        assert 0.05 <= value <= 0.9
    assert "F1" in result["threshold_choice"]["method"]


def test_excluded_images_are_left_out(tiny_onnx: Path, built_dataset: Path, tmp_path: Path) -> None:
    from model.runtime import Detector
    from training.evaluate import evaluate, read_image_list

    names = sorted(p.stem for p in (built_dataset / "images" / "val").iterdir())
    listed = tmp_path / "twins.csv"
    listed.write_text("image,twin\n" + "".join(f"{name},x\n" for name in names[:3]))
    exclude = frozenset(read_image_list(listed))
    assert exclude == set(names[:3])
    result, images = evaluate(Detector.load(tiny_onnx), built_dataset, "val", limit=2, exclude=exclude)
    assert result["excluded"] == 3 and not exclude & {image.name for image in images}
    assert result["images"] == len(images) > 0


def test_envwatch_evaluate_with_extra_negatives(
    tiny_onnx: Path, built_dataset: Path, shared_datasets: Path, tmp_path: Path
) -> None:
    """The folder's photos are detected and join the cap; an empty folder is a clear error."""
    folder = tmp_path / "calibrate"
    folder.mkdir()
    photos = sorted((shared_datasets / "garbage-cn" / "valid" / "images").glob("*.jpg"))[:2]
    for photo in photos:
        (folder / photo.name).write_bytes(photo.read_bytes())
    out = tmp_path / "val.json"
    command = [sys.executable, "-m", "inference_api.cli", "evaluate", "--model", str(tiny_onnx), "--data"]
    command += [str(built_dataset), "--split", "val", "--limit", "5", "--choose-thresholds", "--out", str(out)]
    run = subprocess.run([*command, "--extra-negatives", str(folder)], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    extra = json.loads(out.read_text())["threshold_choice"]["extra_negatives"]
    assert extra == {"folder": str(folder), "images": sorted(p.stem for p in photos)}
    (tmp_path / "empty").mkdir()
    run = subprocess.run(
        [*command, "--extra-negatives", str(tmp_path / "empty")], cwd=REPO, capture_output=True, text=True
    )
    assert run.returncode == 2 and "no photos under" in run.stderr
