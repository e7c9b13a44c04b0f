"""The pieces of training that are ours: the safe checkpoint reader and the partial-label loss."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils import IterableSimpleNamespace
from ultralytics.utils.loss import v8DetectionLoss

from model.taxonomy import LABEL_NAMES
from training.partial_labels import PartialLabelDetectionModel
from training.pretrained import load_yolov5_state_dict, transfer_backbone_and_neck


class Exploit:
    def __reduce__(self) -> tuple:
        return (os.system, ("echo pwned",))


def test_checkpoint_reader_refuses_foreign_code(tmp_path: Path) -> None:
    hostile = tmp_path / "hostile.pt"
    torch.save({"model": Exploit()}, hostile)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load"):
        load_yolov5_state_dict(hostile)


def test_coco_backbone_and_neck_load_tensor_for_tensor(pretrained_weights: Path) -> None:
    tensors = load_yolov5_state_dict(pretrained_weights)
    assert len(tensors) > 342 and all(t.dtype != torch.float16 for t in tensors.values())
    model = DetectionModel("yolov5n.yaml", nc=len(LABEL_NAMES), verbose=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert transfer_backbone_and_neck(model, pretrained_weights) == 342
    after = model.state_dict()
    assert torch.equal(after["model.0.conv.weight"], tensors["model.0.conv.weight"])
    assert not torch.equal(after["model.0.conv.weight"], before["model.0.conv.weight"])
    head = f"model.{len(model.model) - 1}."
    assert all(torch.equal(after[k], before[k]) for k in after if k.startswith(head))


def loss_setup() -> tuple[PartialLabelDetectionModel, dict]:
    torch.manual_seed(0)
    model = PartialLabelDetectionModel("yolov5n.yaml", nc=len(LABEL_NAMES), verbose=False)
    model.args = IterableSimpleNamespace(box=7.5, cls=0.5, dfl=1.5)
    model.train()
    preds = model(torch.rand(2, 3, 128, 128))
    fire, smoke = LABEL_NAMES.index("fire"), LABEL_NAMES.index("smoke")
    batch = {  # image 0: a fire box; image 1: a smoke box
        "batch_idx": torch.tensor([0.0, 1.0]),
        "cls": torch.tensor([[fire], [smoke]], dtype=torch.float32),
        "bboxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.6, 0.6, 0.3, 0.3]]),
    }
    return model, {"preds": preds, "batch": batch}


def with_ignore_region(batch: dict, image: int, label: str) -> dict:
    region_class = len(LABEL_NAMES) + LABEL_NAMES.index(label)
    return {
        "batch_idx": torch.cat([batch["batch_idx"], torch.tensor([float(image)])]),
        "cls": torch.cat([batch["cls"], torch.tensor([[float(region_class)]])]),
        "bboxes": torch.cat([batch["bboxes"], torch.tensor([[0.5, 0.5, 1.0, 1.0]])]),
    }


def test_without_ignore_regions_the_loss_is_ultralytics_own() -> None:
    model, case = loss_setup()
    ours, _ = model.init_criterion()(case["preds"], case["batch"])
    theirs, _ = v8DetectionLoss(model)(case["preds"], case["batch"])
    assert torch.allclose(ours, theirs)


def test_ignore_region_removes_exactly_that_labels_classification_terms() -> None:
    model, case = loss_setup()
    criterion = model.init_criterion()
    _, plain = criterion(case["preds"], case["batch"])
    _, no_smoke_on_0 = criterion(case["preds"], with_ignore_region(case["batch"], 0, "smoke"))
    _, no_fire_on_1 = criterion(case["preds"], with_ignore_region(case["batch"], 1, "fire"))
    # Box and DFL losses are untouched: the region is not a box to learn.
    assert torch.allclose(no_smoke_on_0["box_loss"], plain["box_loss"])
    assert torch.allclose(no_smoke_on_0["dfl_loss"], plain["dfl_loss"])
    assert no_smoke_on_0["cls_loss"] < plain["cls_loss"] and no_fire_on_1["cls_loss"] < plain["cls_loss"]

    # Image 0 has no smoke box and image 1 no fire box, so each region removes the BCE of that
    # label against target 0 over every anchor of that image; the normaliser is the same in both
    # runs, so the two drops must stand in the ratio of those BCE sums.
    scores = case["preds"]["scores"].permute(0, 2, 1).detach()
    fire, smoke = LABEL_NAMES.index("fire"), LABEL_NAMES.index("smoke")
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    dropped_smoke = bce(scores[0, :, smoke], torch.zeros_like(scores[0, :, smoke]), reduction="sum")
    dropped_fire = bce(scores[1, :, fire], torch.zeros_like(scores[1, :, fire]), reduction="sum")
    measured = (plain["cls_loss"] - no_smoke_on_0["cls_loss"]) / (plain["cls_loss"] - no_fire_on_1["cls_loss"])
    assert torch.isclose(measured, dropped_smoke / dropped_fire, rtol=1e-3)


def test_ignore_region_never_touches_box_regression() -> None:
    """A smoke region over image 1, which has a smoke box, leaves that box's regression loss whole."""
    model, case = loss_setup()
    criterion = model.init_criterion()
    _, plain = criterion(case["preds"], case["batch"])
    _, ignored = criterion(case["preds"], with_ignore_region(case["batch"], 1, "smoke"))
    assert torch.allclose(ignored["box_loss"], plain["box_loss"]) and ignored["cls_loss"] < plain["cls_loss"]


def test_training_resumes_after_being_killed(built_dataset: Path, pretrained_weights: Path, tmp_path: Path) -> None:
    """Kill `envwatch train` once its first epoch is saved; `--resume` must finish the run."""
    import signal
    import subprocess
    import sys
    import time

    common = ["--project", str(tmp_path), "--name", "killed"]
    command = [sys.executable, "-m", "inference_api.cli", "train", *common, "--data", str(built_dataset / "data.yaml")]
    command += ["--epochs", "3", "--imgsz", "96", "--batch", "8", "--fraction", "0.005"]
    command += ["--pretrained", str(pretrained_weights)]
    results = tmp_path / "killed" / "results.csv"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        last = tmp_path / "killed" / "weights" / "last.pt"
        while not (last.exists() and results.exists() and len(results.read_text().splitlines()) >= 2):
            assert process.poll() is None, "training ended before it could be interrupted"
            assert time.monotonic() < deadline, "first epoch never finished"
            time.sleep(0.5)
        time.sleep(1)  # let the checkpoint write finish: killing mid-write is another test
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    epochs_before = len(results.read_text().splitlines()) - 1
    assert epochs_before < 3
    resumed = subprocess.run(
        [sys.executable, "-m", "inference_api.cli", "train", *common, "--resume"],
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    rows = results.read_text().splitlines()[1:]
    assert [int(float(row.split(",")[0])) for row in rows] == [1, 2, 3]
    assert (tmp_path / "killed" / "weights" / "best.pt").exists()


def test_resume_without_a_run_is_refused(tmp_path: Path) -> None:
    import subprocess
    import sys

    command = [sys.executable, "-m", "inference_api.cli", "train", "--project", str(tmp_path), "--name", "none"]
    run = subprocess.run([*command, "--resume"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "nothing to resume" in run.stdout + run.stderr
    assert not (tmp_path / "none").exists()


def test_runs_live_in_the_cache_outside_the_checkout(tmp_path: Path) -> None:
    """Without --project, runs go to ENVWATCH_CACHE/runs: where --resume looks after a fresh checkout."""
    import os
    import subprocess
    import sys

    cache = tmp_path / "cache"
    command = [sys.executable, "-m", "inference_api.cli", "train", "--name", "gone", "--resume"]
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=120, env={**os.environ, "ENVWATCH_CACHE": str(cache)}
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert str(cache / "runs" / "gone" / "weights" / "last.pt") in run.stdout


def head_weights(checkpoint: Path) -> torch.Tensor:
    """The detection head's convolution weights, flattened into one vector."""
    from ultralytics import YOLO

    state = YOLO(str(checkpoint)).model.state_dict()
    head = f"model.{max(int(k.split('.')[1]) for k in state)}."
    weights = [v.flatten().float() for k, v in sorted(state.items()) if k.startswith(head) and "conv.weight" in k]
    return torch.cat(weights)


def with_head_redrawn(checkpoint: Path, out: Path) -> Path:
    """A copy of `checkpoint` whose head weights are redrawn at random (seed 1).

    The tiny checkpoint trained one epoch from the seed-0 random head a COCO start also draws, so
    its head is too close to a fresh one to tell a fine-tune from a fresh start. This one is not.
    """
    checkpoint_data = torch.load(checkpoint, map_location="cpu", weights_only=False)
    generator = torch.Generator().manual_seed(1)
    for key in ("model", "ema"):
        model = checkpoint_data.get(key)
        if model is None:
            continue
        head = model.model[-1]
        for name, tensor in head.state_dict().items():
            if "conv.weight" in name:
                tensor.copy_(torch.randn(tensor.shape, generator=generator).to(tensor.dtype) * 0.05)
    torch.save(checkpoint_data, out)
    return out


def test_fine_tuning_starts_from_the_earlier_checkpoint(
    built_dataset: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """`--init` keeps the earlier model's head: a COCO start would draw a fresh random one."""
    import yaml

    from inference_api.cli import main as envwatch

    earlier = with_head_redrawn(tiny_checkpoint, tmp_path / "earlier.pt")
    command = ["train", "--data", str(built_dataset / "data.yaml"), "--init", str(earlier)]
    command += ["--epochs", "1", "--imgsz", "96", "--batch", "8", "--fraction", "0.005"]
    assert envwatch([*command, "--project", str(tmp_path), "--name", "tuned"]) == 0
    args = yaml.safe_load((tmp_path / "tuned" / "args.yaml").read_text())
    assert (args["model"], args["optimizer"], args["lr0"]) == (str(earlier), "AdamW", 0.0005)
    before, after = head_weights(earlier), head_weights(tmp_path / "tuned" / "weights" / "last.pt")
    assert torch.nn.functional.cosine_similarity(before, head_weights(tiny_checkpoint), dim=0) < 0.5
    assert not torch.equal(before, after), "the fine-tune did not train"
    assert torch.nn.functional.cosine_similarity(before, after, dim=0) > 0.99


def test_fine_tuning_needs_an_existing_checkpoint(built_dataset: Path, tmp_path: Path, capsys) -> None:
    from inference_api.cli import main as envwatch

    command = ["train", "--data", str(built_dataset / "data.yaml"), "--init", str(tmp_path / "missing.pt")]
    assert envwatch([*command, "--project", str(tmp_path), "--name", "none"]) == 2
    assert "no checkpoint at" in capsys.readouterr().out and not (tmp_path / "none").exists()
