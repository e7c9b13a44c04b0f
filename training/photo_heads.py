"""A logistic head per problem type from a few dozen photo labels, its threshold, and what it is worth.

Torch-free (numpy only) because it runs inside the service when an inspector asks to learn. The
head is the same model as training/scene.py's: L2-regularised logistic regression on standardised
frozen backbone features, positives weighted to balance the negatives, standardisation folded into
the weights. With tens of photos and 1,280 features Newton's method converges in a few steps.

The threshold is chosen by stratified k-fold cross-validation on the labelled photos: each photo
is scored by a head fitted without its fold, and the threshold is the one with the best recall
while at most `MAX_FALSE_ALARMS` of the out-of-fold negatives reach it. The recall and false alarms
reported are those out-of-fold numbers at the chosen threshold: measured on photos each head did
not see, but the threshold was chosen on the same numbers, so they lean optimistic; the
learning-curve benchmark (benchmarks/learning_curve.py) measures heads on photos never used at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

L2 = 0.01
"""The L2 strength v4's heads chose on val for every type (model/versions/v4/eval/v4-scene-train.json)."""
MIN_EACH = 8
"""Least positive and least negative photos a type needs: 5-fold CV leaves a fold at least one of each,
and fewer than 8 positives make the chosen threshold one photo's whim."""
FOLDS = 5
MAX_FALSE_ALARMS = 0.10
"""The share of out-of-fold negatives the chosen threshold may flag: the issue's aim for a new type."""
STEPS = 25
BIAS_PENALTY = 1e-9
"""The bias is not regularised; this much keeps the Newton system invertible."""


def fit_logistic(
    features: np.ndarray, labels: np.ndarray, l2: float = L2, steps: int = STEPS
) -> tuple[np.ndarray, np.ndarray]:
    """One head: weight (D,) and bias for raw features, minimising the balanced log loss + l2·|w|² (Newton).

    The loss is training/scene.py's (BCE with positives weighted by negatives / positives, at least
    1; L2 on the standardised weights, not the bias), so both fit the same model. With fewer photos
    than features (the usual case here) each Newton step is solved in photo space, which is exact
    and takes milliseconds instead of a 1,281 × 1,281 solve.
    """
    y = labels.astype(np.float64)
    mean, std = features.mean(0), features.std(0) + 1e-6
    x = np.hstack([(features - mean) / std, np.ones((len(y), 1))]).astype(np.float64)
    positives = max(y.sum(), 1.0)
    weight_of = np.where(y > 0, max((len(y) - positives) / positives, 1.0), 1.0) / len(y)
    penalty = np.full(x.shape[1], 2 * l2)
    penalty[-1] = BIAS_PENALTY
    few = len(y) < x.shape[1]
    gram = (x / penalty) @ x.T if few else None  # X P⁻¹ Xᵀ, for the Newton step in photo space (Woodbury)
    theta = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1.0 / (1.0 + np.exp(-(x @ theta)))
        d = weight_of * p * (1 - p)
        gradient = x.T @ (weight_of * (p - y)) + penalty * theta
        if gram is not None:  # (XᵀDX + P)⁻¹g = P⁻¹g − P⁻¹Xᵀ(I + D·XP⁻¹Xᵀ)⁻¹ D X P⁻¹g: an n×n solve, not D×D
            scaled = gradient / penalty
            inner = np.linalg.solve(np.eye(len(y)) + d[:, None] * gram, d * (x @ scaled))
            step = scaled - (x.T @ inner) / penalty
        else:
            step = np.linalg.solve((x.T * d) @ x + np.diag(penalty), gradient)
        theta -= step
        if np.abs(step).max() < 1e-6:
            break
    w = theta[:-1] / std
    return w.astype(np.float32), np.float32(theta[-1] - w @ mean)


def scores(features: np.ndarray, weight: np.ndarray, bias: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(features @ weight + bias)))


def most_uncertain(labelled: np.ndarray, answers: np.ndarray, pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pool photos in the order to label them next, and their scores, under a head fitted on the answers so far.

    Active learning by uncertainty: the provisional head is fitted on every answer (balanced), and
    the photos it scores nearest its boundary, 0.5, come first, since each answer there moves the
    boundary most. The service's "label next" listing and the learning-curve benchmark's simulated
    inspector both rank this way.
    """
    weight, bias = fit_logistic(labelled, answers)
    score = scores(pool, weight, bias) if len(pool) else np.zeros(0)
    return np.argsort(np.abs(score - 0.5), kind="stable"), score


def folds_of(labels: np.ndarray, folds: int = FOLDS, seed: int = 0) -> np.ndarray:
    """A fold index per photo, positives and negatives dealt out evenly (stratified), reproducibly."""
    rng = np.random.default_rng(seed)
    fold = np.zeros(len(labels), dtype=np.int64)
    for value in (False, True):
        members = np.flatnonzero(labels == value)
        fold[rng.permutation(members)] = np.arange(len(members)) % folds
    return fold


def out_of_fold(features: np.ndarray, labels: np.ndarray, folds: int = FOLDS) -> np.ndarray:
    """Each photo's score from a head fitted on the other folds."""
    fold = folds_of(labels, folds)
    result = np.zeros(len(labels))
    for k in range(folds):
        held = fold == k
        w, b = fit_logistic(features[~held], labels[~held])
        result[held] = scores(features[held], w, b)
    return result


def choose_threshold(score: np.ndarray, labels: np.ndarray, cap: float = MAX_FALSE_ALARMS) -> float:
    """The threshold with the best recall while at most `cap` of the negatives reach it.

    Candidates are midpoints between neighbouring scores (and one above the top score: flag none).
    Ties (same recall and false alarms): the middle of the tied range, so the threshold sits in the
    gap between the labels rather than at its edge.
    """
    ordered = np.unique(score)
    candidates = np.concatenate([(ordered[:-1] + ordered[1:]) / 2, [ordered[-1] + 1e-6]])
    positive, negative = labels > 0, labels <= 0
    keyed = []
    for t in candidates:
        flagged = score >= t
        false_alarms = float(flagged[negative].mean()) if negative.any() else 0.0
        if false_alarms <= cap + 1e-9:
            keyed.append(((float(flagged[positive].mean()) if positive.any() else 0.0, -false_alarms), float(t)))
    best = max(key for key, _ in keyed)
    tied = [t for key, t in keyed if key == best]
    return float(np.clip((min(tied) + max(tied)) / 2, 0.0, 1.0))


@dataclass(frozen=True)
class LearnedType:
    """One type's head, threshold and cross-validated numbers."""

    type: str
    weight: np.ndarray
    bias: float
    threshold: float
    positives: int
    negatives: int
    cv_recall: float
    cv_false_alarms: float
    cv_flagged_positives: int
    cv_flagged_negatives: int

    def report(self) -> dict:
        return {
            "type": self.type,
            "positives": self.positives,
            "negatives": self.negatives,
            "threshold": round(self.threshold, 4),
            "cv_recall": round(self.cv_recall, 4),
            "cv_false_alarms": round(self.cv_false_alarms, 4),
            "cv_flagged_positives": self.cv_flagged_positives,
            "cv_flagged_negatives": self.cv_flagged_negatives,
        }


def learn_type(problem: str, features: np.ndarray, labels: np.ndarray) -> LearnedType:
    """The head on all labelled photos, with the threshold and numbers from cross-validation (`out_of_fold`)."""
    positive = labels > 0
    folds = min(FOLDS, int(positive.sum()), int((~positive).sum()))
    if folds < 2:
        raise ValueError(f"{problem}: cross-validation needs at least 2 positive and 2 negative photos")
    oof = out_of_fold(features, labels, folds)
    threshold = choose_threshold(oof, labels)
    flagged = oof >= threshold
    weight, bias = fit_logistic(features, labels)
    return LearnedType(
        problem,
        weight,
        float(bias),
        threshold,
        int(positive.sum()),
        int((~positive).sum()),
        float(flagged[positive].mean()),
        float(flagged[~positive].mean()),
        int(flagged[positive].sum()),
        int(flagged[~positive].sum()),
    )
