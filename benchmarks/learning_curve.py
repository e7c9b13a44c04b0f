"""Learning curve of a type learned from photo labels: recall and false alarms against the number of labels.

The proxy for the types we cannot test (no data exists for illegal structures or clutter piles):
burning and exposed garbage are learned exactly as `POST /v1/models/learn` learns a new type
(training/photo_heads.py's `learn_type`: a head on the promoted model's backbone features, the
threshold chosen by cross-validation on the labelled photos alone), from N photo labels (half
showing the type, half not) drawn from the dataset's train split, several draws per N, and
measured on photos never drawn and never used to choose anything. How the labelled photos are
drawn (`--draw`):

- **random**: at random from a pool of train photos (`--pool` showing the type, as many not).
- **lookalikes**: negatives only from the test photos' own source's train half (below).
- **active**: as an inspector following the labels screen's "label next" list would: 2 + 2 photos
  at random from the same pool as `random`, then, one at a time, the pool photo the provisional
  head is least sure of (training/photo_heads.py's `most_uncertain`, which the service's listing
  uses), skipped when its side already has its share.

The held-out sets:

- **burning**: the `ood` split (half of fire-scenes-cair's out-of-domain half: 32 fire, 123 no fire),
  out of domain for every source the labels come from except cair's train half.
- **exposed garbage**: the `ood` split has no garbage photo, so recall is measured on garbage-cn's
  test split (in domain: the same cameras as the labels) and false alarms both there (photos with
  no garbage of either kind) and on the whole `ood` split (out of domain; none shows garbage).

Not a test: it prints a table (docs in the issue note). Features are cached under the cache
folder (training/cache.py) by photo content and backbone, so a second run takes seconds.

    python benchmarks/learning_curve.py --data build/dataset --draws 5 [--draw lookalikes|active]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np

from inference_api.photo_labels import MIN_TO_RANK
from model.registry import promoted_model
from model.taxonomy import PROBLEMS_BY_KEY
from training.cache import cache_dir
from training.learn import open_backbone
from training.photo_heads import MAX_FALSE_ALARMS, learn_type, most_uncertain, scores

SIZES = (5, 10, 20, 40, 50, 100)
"""Photo labels per head, half showing the type (rounded up); 40 is the issue's 20 + 20."""
FAMILY = {"burning": {"burning"}, "exposed_garbage": {"exposed_garbage", "overflowing_garbage"}}
"""A photo is a negative only if it shows nothing of the type's family (training/scene.py's `negative_for`)."""
LOOKALIKES = {"burning": "fire-scenes-cair", "exposed_garbage": "garbage-cn"}
"""`--draw lookalikes`: where the negatives come from instead of the whole train split: the train half of the
test photos' own source (sunsets, lamps, night lights; bins and streets with no garbage), as inspectors labelling
the photos "label next" shows them would give. Never the test photos themselves (other split)."""


def read(data: Path) -> list[dict]:
    with open(data / "photos.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def shows(row: dict, kinds: set[str]) -> bool:
    return any(row[k] == "1" for k in kinds)


def pool(
    rows: list[dict], problem: str, size: int, rng: np.random.Generator, lookalikes: bool
) -> tuple[list[dict], np.ndarray]:
    """Up to `size` positive and `size` negative train photos for `problem`, drawn once: the labels come from here."""
    train = [r for r in rows if r["split"] == "train"]
    positive = [r for r in train if r[problem] == "1"]
    negative = [
        r for r in train if not shows(r, FAMILY[problem]) and (not lookalikes or r["source"] == LOOKALIKES[problem])
    ]
    chosen_pos = [positive[i] for i in rng.permutation(len(positive))[:size]]
    chosen_neg = [negative[i] for i in rng.permutation(len(negative))[:size]]
    return chosen_pos + chosen_neg, np.array([1] * len(chosen_pos) + [0] * len(chosen_neg), dtype=np.float32)


def test_sets(rows: list[dict], problem: str) -> dict[str, tuple[list[dict], np.ndarray]]:
    """Named held-out sets: photos and whether each shows `problem` (negatives: nothing of its family)."""
    ood = [r for r in rows if r["split"] == "ood"]
    if problem == "burning":
        kept = [r for r in ood if r["burning"] == "1" or not shows(r, FAMILY[problem])]
        return {"ood (cair web photos)": (kept, np.array([r["burning"] == "1" for r in kept]))}
    test = [r for r in rows if r["split"] == "test" and r["source"] == "garbage-cn"]
    kept = [r for r in test if r[problem] == "1" or not shows(r, FAMILY[problem])]
    return {
        "garbage-cn test (in domain)": (kept, np.array([r[problem] == "1" for r in kept])),
        "ood (cair web photos, no garbage)": (ood, np.zeros(len(ood), dtype=bool)),
    }


def draw_labels(
    x: np.ndarray, labels: np.ndarray, n_pos: int, n_neg: int, rng: np.random.Generator, active: bool
) -> np.ndarray:
    """Indices of the pool photos labelled: `n_pos` showing the type and `n_neg` not, at random or actively."""
    positive_idx, negative_idx = np.flatnonzero(labels > 0), np.flatnonzero(labels == 0)
    first = min(MIN_TO_RANK, n_pos, n_neg)
    start_pos, start_neg = (first, first) if active else (n_pos, n_neg)
    chosen = [*rng.choice(positive_idx, start_pos, replace=False), *rng.choice(negative_idx, start_neg, replace=False)]
    wanted = {True: n_pos, False: n_neg}
    while len(chosen) < n_pos + n_neg:
        rest = np.setdiff1d(np.arange(len(labels)), chosen)
        order, _ = most_uncertain(x[chosen], labels[chosen], x[rest])
        full = {side for side, n in wanted.items() if int(((labels[chosen] > 0) == side).sum()) >= n}
        chosen.append(next(int(rest[i]) for i in order if bool(labels[rest[i]] > 0) not in full))
    return np.array(chosen)


def rates(score: np.ndarray, truth: np.ndarray, threshold: float) -> tuple[float | None, float | None]:
    flagged = score >= threshold
    recall = float(flagged[truth].mean()) if truth.any() else None
    false_alarms = float(flagged[~truth].mean()) if (~truth).any() else None
    return recall, false_alarms


def number(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("build/dataset"))
    parser.add_argument("--model", type=Path, default=None, help="model whose backbone to use (default: promoted)")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--pool", type=int, default=250, help="train photos per side the draws come from")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--draw", choices=("random", "lookalikes", "active"), default="random", help="how labelled photos are drawn"
    )
    args = parser.parse_args()

    rows = read(args.data)
    back = open_backbone(args.model or promoted_model(), cache_dir() / "photo-features")
    print(
        f"backbone {back.identity} of {args.model or promoted_model()}; {args.draws} draws per size; "
        f"labels drawn: {args.draw}",
        flush=True,
    )
    rng = np.random.default_rng(args.seed)
    for problem in FAMILY:
        photos, labels = pool(rows, problem, args.pool, rng, args.draw == "lookalikes")
        started = time.perf_counter()
        x = back.features.features([Path(r["path"]) for r in photos], desc=f"pool {problem}")
        tests = {
            name: (back.features.features([Path(r["path"]) for r in kept], desc=name), truth)
            for name, (kept, truth) in test_sets(rows, problem).items()
        }
        print(f"\n## {PROBLEMS_BY_KEY[problem].name_en} (features {time.perf_counter() - started:.0f} s)\n")
        names = list(tests)
        header = " | ".join(f"{n} recall | {n} false alarms" for n in names)
        print(f"| labels | draws | fit + CV s | CV recall | CV false alarms | {header} |")
        print("|---" * (5 + 2 * len(names)) + "|")
        positive_idx, negative_idx = np.flatnonzero(labels > 0), np.flatnonzero(labels == 0)
        verdict = ""
        for size in (*SIZES, len(labels)):
            n_pos, n_neg = (size + 1) // 2, size // 2
            if size == len(labels):
                n_pos, n_neg = len(positive_idx), len(negative_idx)
            results, seconds = [], []
            for _ in range(args.draws if size < len(labels) else 1):
                chosen = draw_labels(x, labels, n_pos, n_neg, rng, args.draw == "active" and size < len(labels))
                t0 = time.perf_counter()
                head = learn_type(problem, x[chosen], labels[chosen])
                seconds.append(time.perf_counter() - t0)
                row = [head.cv_recall, head.cv_false_alarms]
                for test_x, truth in tests.values():
                    row += list(rates(scores(test_x, head.weight, head.bias), truth, head.threshold))
                results.append(row)
            table = np.array([[np.nan if v is None else v for v in r] for r in results], dtype=float)
            mean, spread = np.nanmean(table, 0), np.nanstd(table, 0)
            cells = " | ".join(
                f"{m:.3f} ± {s:.3f}" if not np.isnan(m) else "–" for m, s in zip(mean, spread, strict=True)
            )
            label = f"{size} ({n_pos}+{n_neg})" if size < len(labels) else f"{size} (whole pool, {n_pos}+{n_neg})"
            print(f"| {label} | {len(results)} | {np.mean(seconds):.2f} | {cells} |", flush=True)
            if size == 40:
                first = tests[names[0]]
                recalls = table[:, 2]
                false = table[:, 3] if problem == "burning" else table[:, 5]
                met = int(((recalls >= 0.8) & (false <= MAX_FALSE_ALARMS)).sum())
                verdict = (
                    f"20 + 20: recall ≥ 0.80 and out-of-domain false alarms ≤ {MAX_FALSE_ALARMS:.2f} in {met} of "
                    f"{len(results)} draws (recall on {names[0]}, {len(first[1])} photos)"
                )
        print(f"\n{verdict}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
