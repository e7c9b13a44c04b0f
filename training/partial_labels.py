"""Train on sources that label only some classes, without teaching that the rest is background.

fire-continuous labels fire but never smoke, although smoke fills many of its frames. Merged
naively, every smoky frame there would tell the smoke output "this is not smoke". Instead the
dataset recipe marks such frames with an *ignore region* (class id `nc + label`, a whole-frame
box that mosaic and affine augmentation move like any other box), and the loss below zeroes the
classification loss of that label for every anchor inside the region. Boxes of other labels in the
same frame still train normally, and box regression is never masked. A region masks that label's
positives too, which costs nothing here: a source that never labels smoke has no smoke boxes, and
mosaic tiles do not overlap.
"""

from __future__ import annotations

from typing import Any

import torch
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils.loss import v8DetectionLoss
from ultralytics.utils.tal import make_anchors


class PartialLabelLoss(v8DetectionLoss):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__(model)
        self.base_class_weights = self.class_weights

    def loss(self, preds: dict[str, torch.Tensor], batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        cls = batch["cls"].view(-1)
        ignore = cls >= self.nc
        self.class_weights = self.base_class_weights
        if bool(ignore.any()):
            self.class_weights = self.ignore_weights(preds, batch, ignore)
            keep = ~ignore
            batch = {
                **batch,
                "cls": batch["cls"][keep],
                "bboxes": batch["bboxes"][keep],
                "batch_idx": batch["batch_idx"][keep],
            }
        return super().loss(preds, batch)

    def ignore_weights(
        self, preds: dict[str, torch.Tensor], batch: dict[str, Any], ignore: torch.Tensor
    ) -> torch.Tensor:
        """(batch, anchors, nc) weights: 0 where an anchor centre lies in an ignore region of that label."""
        anchor_points, stride_tensor = make_anchors(preds["feats"], self.stride, 0.5)
        points = anchor_points * stride_tensor  # anchor centres in input pixels, (A, 2)
        height, width = (torch.tensor(preds["feats"][0].shape[2:], device=self.device) * self.stride[0]).tolist()
        xywh = batch["bboxes"][ignore].to(self.device) * torch.tensor(
            [width, height, width, height], device=self.device
        )
        x1, y1 = xywh[:, 0] - xywh[:, 2] / 2, xywh[:, 1] - xywh[:, 3] / 2
        x2, y2 = xywh[:, 0] + xywh[:, 2] / 2, xywh[:, 1] + xywh[:, 3] / 2
        inside = (
            (points[None, :, 0] >= x1[:, None])
            & (points[None, :, 0] <= x2[:, None])
            & (points[None, :, 1] >= y1[:, None])
            & (points[None, :, 1] <= y2[:, None])
        )  # (regions, A)
        region, anchor = inside.nonzero(as_tuple=True)
        image = batch["batch_idx"][ignore].to(self.device).long()[region]
        label = (batch["cls"].view(-1)[ignore].to(self.device).long() - self.nc)[region]
        batch_size = preds["feats"][0].shape[0]
        weights = torch.ones(batch_size, len(points), self.nc, device=self.device)
        weights[image, anchor, label] = 0.0
        if self.base_class_weights is not None:
            weights = weights * self.base_class_weights
        return weights


class PartialLabelDetectionModel(DetectionModel):
    """A DetectionModel whose training loss understands ignore regions."""

    def init_criterion(self) -> PartialLabelLoss:
        return PartialLabelLoss(self)
