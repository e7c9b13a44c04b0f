"""The detector retrained on the same few labelled photos as a learned head, as far as a CPU allows.

For each size, one draw of box-labelled train photos (half showing the type, half not; photo-level
sources are left out because the detector needs boxes) is learned twice:

- as a head on the promoted backbone, exactly as `POST /v1/models/learn` does (benchmarks/learning_curve.py);
- as the detector, Ultralytics YOLOv5u-n from the COCO checkpoint (training/train.py, the recipe of
  v1-v3) trained on those photos' boxes alone for `--epochs` at `--imgsz`, exported, and run through
  the envwatch runtime at Ultralytics' default 0.25 per label (nothing to choose a threshold on).

Both are measured on the `ood` split for burning (recall and false alarms per photo). Needs the
train extra (torch, Ultralytics). Slow: minutes per size on two cores, which is why it runs one
draw per size and one type only; the note states what was measured.

    python benchmarks/detector_few_labels.py --data build/dataset --sizes 40 100 --epochs 30
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from learning_curve import FAMILY, rates, read, shows, test_sets  # noqa: E402

from model.images import load_image_file  # noqa: E402
from model.registry import promoted_model  # noqa: E402
from model.runtime import Detector  # noqa: E402
from training.cache import cache_dir  # noqa: E402
from training.learn import open_backbone  # noqa: E402
from training.photo_heads import learn_type, scores  # noqa: E402

PRETRAINED = Path(__file__).resolve().parents[2] / "shared" / "weights" / "yolov5n-coco-v7.0.pt"


def draw(rows: list[dict], problem: str, size: int, rng: np.random.Generator) -> tuple[list[dict], np.ndarray]:
    train = [r for r in rows if r["split"] == "train" and r["labels"] == "boxes"]
    positive = [r for r in train if r[problem] == "1"]
    negative = [r for r in train if not shows(r, FAMILY[problem])]
    n_pos, n_neg = (size + 1) // 2, size // 2
    chosen = [positive[i] for i in rng.choice(len(positive), n_pos, replace=False)]
    chosen += [negative[i] for i in rng.choice(len(negative), n_neg, replace=False)]
    return chosen, np.array([1] * n_pos + [0] * n_neg, dtype=np.float32)


def detector_from(photos: list[dict], data: Path, folder: Path, epochs: int, imgsz: int) -> Path:
    """Train and export a detector on `photos` alone (their dataset label files, ignore regions included)."""
    from training.export import export_onnx
    from training.train import TrainConfig, train

    for kind in ("images", "labels"):
        (folder / kind / "train").mkdir(parents=True)
    for row in photos:
        image = Path(row["path"])
        (folder / "images" / "train" / f"{row['name']}{image.suffix}").symlink_to(image)
        shutil.copyfile(
            data / "labels" / row["split"] / f"{row['name']}.txt", folder / "labels" / "train" / f"{row['name']}.txt"
        )
    names = yaml.safe_load((data / "data.yaml").read_text())["names"]
    config = {"path": str(folder), "train": "images/train", "val": "images/train", "names": names}
    (folder / "data.yaml").write_text(yaml.safe_dump(config))
    best = train(
        TrainConfig(
            data=folder / "data.yaml",
            project=folder / "runs",
            name="few",
            epochs=epochs,
            imgsz=imgsz,
            batch=8,
            pretrained=PRETRAINED,
            patience=epochs,
        )
    )
    return export_onnx(best, folder / "few.onnx", "few-labels", {}, imgsz)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("build/dataset"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[40, 100])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    problem = "burning"
    rows = read(args.data)
    back = open_backbone(promoted_model(), cache_dir() / "photo-features")
    ((test_name, (test_rows, truth)),) = test_sets(rows, problem).items()
    test_x = back.features.features([Path(r["path"]) for r in test_rows], desc="test")
    rng = np.random.default_rng(args.seed)
    print("| labels | head recall | head false alarms | detector recall | detector false alarms | detector train s |")
    print("|---|---|---|---|---|---|", flush=True)
    for size in args.sizes:
        photos, labels = draw(rows, problem, size, rng)
        head = learn_type(problem, back.features.features([Path(r["path"]) for r in photos]), labels)
        head_rates = rates(scores(test_x, head.weight, head.bias), truth, head.threshold)
        with tempfile.TemporaryDirectory(prefix="few-labels-") as tmp:
            started = time.perf_counter()
            detector = Detector(detector_from(photos, args.data, Path(tmp), args.epochs, args.imgsz))
            seconds = time.perf_counter() - started
            flagged = np.array(
                [
                    any(
                        p.type == problem
                        for p in detector.problems(detector.detect([load_image_file(Path(r["path"])).pixels])[0])
                    )
                    for r in test_rows
                ]
            )
        det_recall, det_false = float(flagged[truth].mean()), float(flagged[~truth].mean())
        print(
            f"| {size} ({int(labels.sum())}+{int((labels == 0).sum())}) | {head_rates[0]:.3f} | {head_rates[1]:.3f} | "
            f"{det_recall:.3f} | {det_false:.3f} | {seconds:.0f} |",
            flush=True,
        )
    print(f"\n(one draw per size; measured on {test_name}: {int(truth.sum())} fire, {int((~truth).sum())} no fire)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
