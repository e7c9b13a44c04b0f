"""Tiled inference: find small problems in large images (drone frames, orthomosaic tiles).

The detector sees its input size (416 px). Fitting a 5472 x 3648 drone frame into that shrinks
it 13 times, and a burning pile or an overflowing bin 100 px across becomes 8 px: gone. So a
large image is cut into overlapping tiles of exactly the input size, at the image's own
resolution, batched through `Detector.detect`, and the boxes are shifted back into original
pixels. The whole frame is detected once more at the usual resized scale, so an object larger
than a tile (which every tile would see only in pieces) is still found whole.

Merging the tile boxes into one set is greedy, best score first, per label:

- a box mostly covering the same ground as a better one (intersection over the smaller box
  at least `MERGE_IOS`) is a duplicate and goes; this removes an object seen whole in two
  overlapping tiles, or in a tile and the full frame;
- a box touching a tile's inner edge is a *piece* of something the edge cut. When the best
  box is itself a piece, it takes in the other pieces it overlaps and lines up with along one
  axis (1-D IoU at least `PIECE_ALIGNMENT`) and its duplicates, growing to their union, so an
  object cut by seams comes back as one box over its whole extent. A whole (uncut) best box
  never grows: it already saw the object whole, and a confident small box must not take the
  extent of a weak large one that merely contains it, nor of a sliver another tile saw badly.

Merging happens after thresholding (`merge_tiles` on thresholded rows), so the boxes reported
at one threshold never depend on weaker boxes detected for another (see inference_api/scan.py).

Overlap is `TILE_OVERLAP` of a tile (83 px at 416): an object smaller than that lies whole in
at least one tile. `auto` tiles an aerial image (drone XMP, a drone maker or GeoTIFF tags, or
`AUTO_MEGAPIXELS` with no camera named; `LoadedImage.aerial`)
when fitting it into the input would shrink it more than `AUTO_SHRINK` times; below that,
objects keep enough pixels and tiling would only cost time (one frame of N tiles costs N + 1
detector runs). A ground photo is not tiled however large: a 12 MP (or 50 or 200 MP)
phone photo of a bin shows the bin large, and its 416 px tiles are close-ups of leaves, walls
and sky, which look like nothing the model trained on. Measured on 23 nature photos with no
problem in them (docs/probes.md): tiled, burning was raised on 22; resized, on 6.

For the same reason a box found in a tile must also reach the model's *tile thresholds*
(`Detector.tile_thresholds`, ONNX metadata, chosen by `envwatch probe calibrate-tiles` so that
tiled problem-free photos raise each problem on at most 10%). For v2's weights that means smoke
only from the whole-frame pass (tiles scored smoke up to 0.99 on leaves) and fire from 0.53.

A tiled image is left to the detector alone: the photo classifier (model/fusion.py) neither
vetoes its boxes nor raises whole-photo problems on it. Fitted into 224 px, a drone frame's
burning pile is a few pixels, so a low classifier score there says nothing, and tiles are the
close-ups of leaves and roofs the classifier never trained on; no aerial data exists here to
calibrate either use (see model/versions/v4/MODEL_CARD.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import numpy as np

from model.detections import Detections
from model.images import LeastSize
from model.runtime import MAX_DETECTIONS, Detector

TileMode = Literal["auto", "on", "off"]
TILE_MODES: tuple[TileMode, ...] = ("auto", "on", "off")
TILE_OVERLAP = 0.2
AUTO_SHRINK = 4.0
AUTO_MEGAPIXELS = 50.0
"""An image this large that does not say who took it is taken for an orthomosaic or stitched aerial."""
MERGE_IOS = 0.5
PIECE_ALIGNMENT = 0.5
EDGE_PX = 2.0
"""A box edge this close to a tile's inner edge was cut by it."""
FULL_FRAME = -1
"""`data["tile"]` of boxes from the whole-frame pass."""


def tile_starts(length: int, tile: int, overlap: float = TILE_OVERLAP) -> list[int]:
    """Offsets of tiles covering `length` pixels, evenly spread, each pair overlapping at least `overlap`.

    The last tile ends exactly at the border, so every tile is full size and none is mostly padding.
    """
    if length <= tile:
        return [0]
    stride = max(1, math.floor(tile * (1 - overlap)))
    count = math.ceil((length - tile) / stride) + 1
    return [round(i * (length - tile) / (count - 1)) for i in range(count)]


def plan_tiles(width: int, height: int, size: tuple[int, int], overlap: float = TILE_OVERLAP) -> np.ndarray:
    """Tile rectangles (x1, y1, x2, y2) over a `width` x `height` image, for tiles of `size` (h, w)."""
    tile_h, tile_w = size
    return np.array(
        [
            (x, y, min(x + tile_w, width), min(y + tile_h, height))
            for y in tile_starts(height, tile_h, overlap)
            for x in tile_starts(width, tile_w, overlap)
        ],
        dtype=np.int64,
    ).reshape(-1, 4)


def should_tile(
    width: int, height: int, size: tuple[int, int], mode: TileMode = "auto", aerial: bool | None = None
) -> bool:
    """Whether `mode` tiles an image of this size; an image that fits in one tile never is.

    `aerial` is what the file says (`LoadedImage.aerial`). When it says nothing, `auto` takes an
    image of `AUTO_MEGAPIXELS` or more for an orthomosaic; a camera that names itself is believed.
    """
    if mode not in TILE_MODES:
        raise ValueError(f"tile mode must be one of {', '.join(TILE_MODES)}, not {mode!r}")
    fits = width <= size[1] and height <= size[0]
    if mode == "off" or fits:
        return False
    if mode == "on":
        return True
    flying = aerial if aerial is not None else width * height >= AUTO_MEGAPIXELS * 1e6
    return flying and max(width / size[1], height / size[0]) > AUTO_SHRINK


DECODE_OVERSAMPLE = 2.0
"""How many times the letterboxed size a photo that is not tiled is decoded at, at least (`decode_size`).

Why not 1: decoded at libjpeg's 1/8 scale, each pixel is the mean of an 8x8 block, a smoother
picture than the full photo shrunk by OpenCV's linear filter, which is what the model was scored
on. At twice the size the problems agreed on more photos and the scores moved a third as much
(docs/scan.md, "Large photos").
"""


def decode_size(size: tuple[int, int], mode: TileMode = "auto") -> LeastSize:
    """What of a photo `load_image` must decode for the detector at `size` (h, w) under tile `mode`.

    All of a photo that will be tiled (its tiles see full-resolution pixels); of any other, enough to
    cover its letterboxed size `DECODE_OVERSAMPLE` times, in either orientation (EXIF may turn it).
    """

    def least(width: int, height: int, aerial: bool | None) -> tuple[int, int] | None:
        if should_tile(width, height, size, mode, aerial):
            return None
        gain = DECODE_OVERSAMPLE * max(min(size[0] / height, size[1] / width), min(size[0] / width, size[1] / height))
        return None if gain >= 1 else (math.ceil(width * gain), math.ceil(height * gain))

    return least


def _cut_edges(boxes: np.ndarray, tile: np.ndarray, width: int, height: int) -> np.ndarray:
    """Which `boxes` (in image pixels) touch an edge of `tile` that is not the image's border."""
    x1, y1, x2, y2 = tile
    return (
        ((boxes[:, 0] <= x1 + EDGE_PX) & (x1 > 0))
        | ((boxes[:, 1] <= y1 + EDGE_PX) & (y1 > 0))
        | ((boxes[:, 2] >= x2 - EDGE_PX) & (x2 < width))
        | ((boxes[:, 3] >= y2 - EDGE_PX) & (y2 < height))
    )


def _concat(parts: Sequence[Detections]) -> Detections:
    """One `Detections` holding the rows of all `parts` (at least one, all with the same data keys)."""
    return Detections(
        np.concatenate([p.xyxy for p in parts]),
        np.concatenate([p.scores for p in parts]),
        np.concatenate([p.class_ids for p in parts]),
        parts[0].names,
        {key: np.concatenate([p.data[key] for p in parts]) for key in parts[0].data},
        size=parts[0].size,
    )


def detect_pieces(
    detector: Detector,
    image: np.ndarray,
    conf: float | None = None,
    batch_size: int = 8,
    tile_thresholds: dict[str, float] | None = None,
) -> Detections:
    """Every box from the whole frame and each tile, in image pixels, not yet merged.

    `data["tile"]` is the tile index (`FULL_FRAME` for the whole-frame pass) and `data["cut"]`
    marks boxes touching a tile's inner edge; `merge_tiles` needs both. Tile boxes scoring below
    `tile_thresholds` (default: the model's own, `Detector.tile_thresholds`) are dropped, whatever
    `conf` is: a tile is a close-up, and close-ups of leaves or sky give smoke scores above 0.9.
    """
    floors = detector.tile_thresholds if tile_thresholds is None else tile_thresholds
    floor = np.array([floors.get(name, 0.0) for name in detector.names], dtype=np.float32)
    height, width = image.shape[:2]
    tiles = plan_tiles(width, height, detector.input_size)
    crops = [image[y1:y2, x1:x2] for x1, y1, x2, y2 in tiles]
    found = detector.detect([image, *crops], conf=conf, batch_size=batch_size, scene=False)
    whole = found[0]
    data = {"tile": np.full(len(whole), FULL_FRAME), "cut": np.zeros(len(whole), bool)}
    parts = [Detections(whole.xyxy, whole.scores, whole.class_ids, whole.names, data, size=whole.size)]
    for index, (tile, detections) in enumerate(zip(tiles, found[1:], strict=True)):
        if len(detections):
            detections = detections[detections.scores >= floor[detections.class_ids]]
        boxes = detections.xyxy + np.tile(tile[:2], 2).astype(np.float32)
        data = {"tile": np.full(len(boxes), index), "cut": _cut_edges(boxes, tile, width, height)}
        parts.append(Detections(boxes, detections.scores, detections.class_ids, detections.names, data))
    return _concat(parts)


def merge_tiles(detections: Detections) -> Detections:
    """One box per object from the boxes of overlapping tiles (see the module docstring), best first.

    Detections that did not come from `detect_pieces` (no `cut` data) are returned unchanged.
    """
    if "cut" not in detections.data or not len(detections):
        return detections
    boxes, cut, labels = detections.xyxy.astype(np.float64), detections.data["cut"], detections.class_ids
    order = np.argsort(-detections.scores, kind="stable")
    kept: list[int] = []
    kept_boxes: list[np.ndarray] = []
    while order.size and len(kept) < MAX_DETECTIONS:  # the cap also bounds the work at very low thresholds
        best, rest = order[0], order[1:]
        box, is_piece = boxes[best].copy(), bool(cut[best])
        while rest.size:
            other = boxes[rest]
            inter_w = np.clip(np.minimum(box[2], other[:, 2]) - np.maximum(box[0], other[:, 0]), 0, None)
            inter_h = np.clip(np.minimum(box[3], other[:, 3]) - np.maximum(box[1], other[:, 1]), 0, None)
            span_w = np.maximum(box[2], other[:, 2]) - np.minimum(box[0], other[:, 0])
            span_h = np.maximum(box[3], other[:, 3]) - np.minimum(box[1], other[:, 1])
            areas = (other[:, 2] - other[:, 0]) * (other[:, 3] - other[:, 1])
            smaller = np.minimum((box[2] - box[0]) * (box[3] - box[1]), areas)
            ios = inter_w * inter_h / np.maximum(smaller, 1e-9)
            aligned = np.maximum(inter_w / np.maximum(span_w, 1e-9), inter_h / np.maximum(span_h, 1e-9))
            same = labels[rest] == labels[best]
            duplicate = same & (ios >= MERGE_IOS)
            joined = same & is_piece & cut[rest] & (inter_w * inter_h > 0) & (aligned >= PIECE_ALIGNMENT)
            taken = duplicate | joined
            if not taken.any():
                break
            if is_piece:
                grow = other[taken]
                box = np.concatenate([np.minimum(box[:2], grow[:, :2].min(0)), np.maximum(box[2:], grow[:, 2:].max(0))])
            rest = rest[~taken]
        kept.append(int(best))
        kept_boxes.append(box)
        order = rest
    result = detections[np.asarray(kept, dtype=np.int64)]
    return Detections(
        np.asarray(kept_boxes).reshape(-1, 4), result.scores, result.class_ids, result.names, size=result.size
    )


def detect_images(
    detector: Detector,
    images: Sequence[np.ndarray],
    conf: float | None = None,
    batch_size: int = 8,
    mode: TileMode = "auto",
    aerial: Sequence[bool | None] | None = None,
    sizes: Sequence[tuple[int, int]] | None = None,
) -> list[Detections]:
    """`Detector.detect` that tiles the images `mode` says to (see `should_tile`); merged boxes per image."""
    found = detect_unmerged(detector, images, conf, batch_size, mode, aerial, sizes)
    return [merge_tiles(detections) for detections in found]


def detect_unmerged(
    detector: Detector,
    images: Sequence[np.ndarray],
    conf: float | None = None,
    batch_size: int = 8,
    mode: TileMode = "auto",
    aerial: Sequence[bool | None] | None = None,
    sizes: Sequence[tuple[int, int]] | None = None,
) -> list[Detections]:
    """Like `detect_images` but tiled images keep their unmerged pieces, to threshold before `merge_tiles`.

    `aerial` is what each image's file says about flying (`LoadedImage.aerial`); nothing, when not given.
    `sizes`: each photo's own (width, height) (`LoadedImage.width`, `.height`), for images decoded at
    reduced size (`decode_size`): their boxes come back in the photo's own pixels (`Detections.at_size`).
    Images that are not tiled are detected together in batches, as `Detector.detect` does.
    """
    flying = list(aerial) if aerial is not None else [None] * len(images)
    size = detector.input_size
    tiled = [should_tile(im.shape[1], im.shape[0], size, mode, a) for im, a in zip(images, flying, strict=True)]
    plain = iter(detector.detect([im for im, t in zip(images, tiled, strict=True) if not t], conf, batch_size))
    found = [
        detect_pieces(detector, image, conf, batch_size) if tile else next(plain)
        for image, tile in zip(images, tiled, strict=True)
    ]
    if sizes is None:
        return found
    return [d if d.size == tuple(own) else d.at_size(own) for d, own in zip(found, sizes, strict=True)]
