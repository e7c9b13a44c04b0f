"""`envwatch train`: Ultralytics training from the YOLOv5n COCO backbone, with partial labels.

The model is Ultralytics' anchor-free `yolov5n.yaml` (YOLOv5u). Its backbone and neck start from
the official COCO checkpoint (training/pretrained.py): measured clearly better than training from
scratch, above all on unseen data. The loss ignores labels a source never annotated
(training/partial_labels.py). Everything else is Ultralytics' own trainer, so a run can be
resumed from its `last.pt`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("YOLO_OFFLINE", "1")

from ultralytics import YOLO  # noqa: E402
from ultralytics.data import build_yolo_dataset  # noqa: E402
from ultralytics.models.yolo.detect import DetectionTrainer  # noqa: E402
from ultralytics.utils.torch_utils import unwrap_model  # noqa: E402

from training.augment import inspection_photo_augmentations  # noqa: E402
from training.partial_labels import PartialLabelDetectionModel  # noqa: E402
from training.pretrained import transfer_backbone_and_neck  # noqa: E402

DEFAULT_PRETRAINED = Path(__file__).resolve().parents[2] / "shared" / "weights" / "yolov5n-coco-v7.0.pt"


@dataclass
class TrainConfig:
    data: Path
    project: Path = Path("runs")
    name: str = "train"
    epochs: int = 40
    imgsz: int = 480
    batch: int = 32
    device: str = "cpu"
    workers: int = 2
    pretrained: Path | None = DEFAULT_PRETRAINED
    resume: bool = False
    fraction: float = 1.0
    cache: bool = False
    patience: int = 15
    seed: int = 0
    hours: float | None = None
    """Train for this long instead of `epochs` (Ultralytics re-plans the schedule to fit)."""
    init: Path | None = None
    """Fine-tune: start from this envwatch checkpoint (an earlier version) instead of COCO."""


FINE_TUNE = {"optimizer": "AdamW", "lr0": 0.0005, "warmup_epochs": 1.0}
"""Half the rate Ultralytics' own `optimizer=auto` picks for a run this size (AdamW, 0.001), one
warm-up epoch instead of three: the weights are already good, so a full-size first step would
undo part of what the earlier version learned."""


def closing_epochs(config: TrainConfig) -> int:
    """Epochs at the end without mosaic: an eighth of the run, or the last one of a run timed by `hours`.

    Ultralytics counts them back from the epoch count it re-plans to fit `hours` (known only after
    the first epoch), so an eighth of `epochs` would be too many: a 6-epoch run would close mosaic
    after its first epoch.
    """
    return 1 if config.hours is not None else max(1, config.epochs // 8)


class EnvwatchTrainer(DetectionTrainer):
    """Builds the partial-label model, seeds it from the COCO checkpoint, reads ignore regions."""

    pretrained: Path | None = None

    def get_model(self, cfg=None, weights=None, verbose: bool = True) -> PartialLabelDetectionModel:
        model = PartialLabelDetectionModel(cfg, nc=self.data["nc"], ch=self.data["channels"], verbose=False)
        if weights:
            model.load(weights)
        elif self.pretrained is not None:
            copied = transfer_backbone_and_neck(model, self.pretrained)
            print(f"envwatch: {copied} backbone and neck tensors from {self.pretrained.name}")
        return model

    def build_dataset(self, img_path: str, mode: str = "train", batch: int | None = None):
        data = self.data
        if mode == "train":
            names = dict(data["names"])
            ignore = {data["nc"] + index: f"ignore:{name}" for index, name in names.items()}
            data = {**data, "names": {**names, **ignore}}
        stride = max(int(unwrap_model(self.model).stride.max()), 32)
        return build_yolo_dataset(self.args, img_path, batch, data, mode=mode, rect=mode == "val", stride=stride)


def train(config: TrainConfig) -> Path:
    """Train (or resume, or fine-tune) and return the path of the best checkpoint.

    A fine-tune (`init`) loads every tensor of the earlier checkpoint whose shape still fits: a
    merged dataset with a new reviewed class keeps all but the last layer of the head.
    """
    pretrained = None if config.init else config.pretrained
    trainer = type("ConfiguredTrainer", (EnvwatchTrainer,), {"pretrained": pretrained})
    run_dir = config.project.resolve() / config.name
    last = run_dir / "weights" / "last.pt"
    if config.resume:
        if not last.exists():
            raise FileNotFoundError(f"nothing to resume: no {last}")
        YOLO(str(last)).train(resume=True, trainer=trainer)
    else:
        YOLO(str(config.init) if config.init else "yolov5n.yaml").train(
            trainer=trainer,
            **(FINE_TUNE if config.init else {}),
            data=str(config.data),
            epochs=config.epochs,
            imgsz=config.imgsz,
            batch=config.batch,
            device=config.device,
            workers=config.workers,
            project=str(config.project.resolve()),
            name=config.name,
            exist_ok=True,
            fraction=config.fraction,
            cache=config.cache,
            patience=config.patience,
            seed=config.seed,
            time=config.hours,
            deterministic=True,
            plots=False,
            amp=config.device != "cpu",
            close_mosaic=closing_epochs(config),
            augmentations=inspection_photo_augmentations(),
            verbose=True,
        )
    return run_dir / "weights" / "best.pt"
