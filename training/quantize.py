"""The INT8 copy of a model file, for CPUs without BF16: onnxruntime's static quantization, some layers kept float.

Why: on a CPU without BF16 (AVX2 only; measured on a 2-core Zen 3 EPYC) onnxruntime runs v8's two
networks 1.3-1.4x faster from this copy than from float32 (in process, 4:3 photos: 25.7 against
36.5 ms a photo at batch 1, 20.7 against 27.3 at batch 8). It runs where it is named
(`ENVWATCH_RUNTIME=onnxruntime-int8`), not by default: it loses 2.5 points of exposed garbage's AP50
on val and finds fewer of test's fire photos than the float file (model card v8, model/networks.py).

What is quantized: the detector's convolutions, weights per output channel at 7 bits
(`reduce_range`: on AVX2 without VNNI onnxruntime's u8 x s8 kernels can overflow their 16-bit sums
with full-range weights; with them the classifier's scores moved twice as far as with 7), activations
per tensor at 8 bits, their ranges the min and max seen on `QUANTIZATION_PHOTOS` train photos
(`calibration_photos`). What stays float32, because quantizing it cost answers on v8 (val and ood_val,
model card v8):

- **the detector's decoding**: everything of Ultralytics' Detect head (the graph's last module)
  after its two branches of convolutions, `cv2` (box distributions) and `cv3` (class logits). It
  concatenates box coordinates in pixels with class scores in 0..1, and one 8-bit scale for both
  crushed every score: the detector found 2 of val's 339 fire photos instead of 304;
- **the photo classifier** (every node under `scene/`, training/scene.py's export). Quantized whole,
  its scores moved by 0.03 on average and up to 0.2 (EfficientNet-Lite's depthwise layers), and 2 of
  ood_val's 15 fire photos were lost; with its first six blocks kept float, still 2 of 15 with other
  calibration photos. Kept float, its scores are the reference's to rounding, for little time: the
  pipeline took 24.4 ms a photo at batch 1 against 23.2 with the classifier mostly INT8, since most
  of the time won is the detector's.

The copy keeps the file's metadata and adds `envwatch.quantized_from`, the sha256 of the file it was
made from: a copy left behind by an older export is never run in the new file's name.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from model.images import load_image_file
from model.networks import QUANTIZED_FROM, network_input, quantized_copy, quantized_from
from model.runtime import Detector, letterbox

DETECT_MODULE = re.compile(r"^/model\.(\d+)/")
"""Ultralytics' export names each node after the module it comes from: `/model.<index>/...`."""
DETECT_CONVOLUTIONS = ("/cv2.", "/cv3.")
"""The Detect head's box and class branches, which are quantized; the rest of the head is not."""
CLASSIFIER = "scene/"
"""training/scene.py's export names every node of the photo classifier under this prefix; all stay float."""
QUANTIZATION_PHOTOS = 128
"""Calibration photos: MinMax ranges take the extremes seen, and 256 photos widened them enough to cost
val 1.2 points of mAP50 (0.6698 against the float file's 0.6814, the classifier then partly quantized
too); 128 gave 0.6822."""


def float_nodes(model: onnx.ModelProto) -> list[str]:
    """The nodes left in float32: the detector's decoding and the photo classifier (module docstring)."""
    indices = [int(m.group(1)) for node in model.graph.node if (m := DETECT_MODULE.match(node.name))]
    if not indices:
        raise ValueError("no Ultralytics detector in this graph (no node named /model.<n>/): nothing to quantize")
    head = f"/model.{max(indices)}/"
    return [
        node.name
        for node in model.graph.node
        if (node.name.startswith(head) and not any(branch in node.name for branch in DETECT_CONVOLUTIONS))
        or node.name.startswith(CLASSIFIER)
    ]


class _Photos(CalibrationDataReader):
    """The calibration photos as the runtime feeds them, one at a time (each keeps its own stride-padded shape)."""

    def __init__(self, input_name: str, photos: Sequence[Path], detector: Detector) -> None:
        self.input_name, self.detector = input_name, detector
        self._next: Iterator[Path] = iter(photos)

    def get_next(self) -> dict[str, np.ndarray] | None:
        photo = next(self._next, None)
        if photo is None:
            return None
        fitted, _ = letterbox(load_image_file(photo).pixels, self.detector.input_size, self.detector.stride)
        return {self.input_name: network_input(fitted[None])}


def quantize(path: Path, photos: Sequence[Path]) -> Path:
    """Write the INT8 copy of the model file at `path` beside it (`<name>.int8.onnx`), calibrated on `photos`.

    Written to a temporary name and moved into place, so a killed run leaves no half-written copy for
    `auto` to find. Returns the copy's path.
    """
    if not photos:
        raise ValueError("no photos to calibrate the INT8 ranges on")
    detector = Detector(path, runtime="onnxruntime")  # refuses files without envwatch metadata, as loading would
    out = quantized_copy(path)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".quantize-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(path), str(prepared), skip_symbolic_shape=True)  # the graph's shapes are dynamic
        model = onnx.load(str(prepared))
        written = Path(tmp) / out.name
        quantize_static(
            str(prepared),
            str(written),
            _Photos(model.graph.input[0].name, photos, detector),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=float_nodes(model),
        )
        copy = onnx.load(str(written))
        copy.metadata_props.append(onnx.StringStringEntryProto(key=QUANTIZED_FROM, value=quantized_from(path)))
        onnx.save(copy, str(written))
        written.replace(out)
    return out
