"""How close the model's per-photo time comes to what this CPU's arithmetic allows (a benchmark, not a test).

The compute floor of a photo is the networks' arithmetic divided by the CPU's peak rate:

- **Arithmetic**: every Conv, ConvTranspose, MatMul and Gemm of the ONNX file counted as
  2 x multiply-adds, with the shapes it really meets (the graph is run once with each such node's
  output exposed, so nothing depends on shape inference): on the full 416 px square, and on the
  shapes the photos measured really run at. The detector sees each photo padded only to a multiple
  of its stride (model/runtime.py's `letterbox`: 416 x 320 for a 4:3 photo), so its share of a
  photo's arithmetic depends on the photo's shape; the classifier always sees the square. Elementwise work,
  activations, resizes and pooling are left out: they are memory-bound and small next to the
  convolutions, and leaving them out only lowers the floor.
- **Peak**: the fastest rate any of three compute-bound graphs reaches on the same runtime, at the
  same precision and thread count: a 2048 x 2048 x 2048 MatMul, a 3x3 convolution of 256 to 256
  channels on 56 x 56 (ResNet's widest layer shape) and a batch of 1x1 convolutions, each the best
  of several runs. A MatMul that large is what vendors' peak figures come from (on AMX machines
  it is several times what a nano YOLO's 16-256 channel convolutions can use), so this is the
  honest, strict peak, not one chosen to flatter the model.

Then, each beside the floor of its runtime's precision: the networks alone on one photo letterboxed
to the full square (with the conversion to the graph's input, as `Detector.detect` runs them), against
the square's floor; and the per-photo time at batch 1 of the whole pipeline on decoded photos
(letterbox, both networks, box decoding and NMS, fusion: `Detector.detect`), against the mean floor
of those photos at the shapes they run at.

    python benchmarks/compute_floor.py --images 32 [--aspect 4:3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from shared_photos import SHARED_DATASETS, aspect_ratio, centre_cropped, photos_in_turn

from model.images import load_image_file
from model.networks import QUANTIZED_RUNTIME, RUNTIMES, STATIC_AFTER, open_network
from model.registry import promoted_model
from model.runtime import Detector, letterbox

SOURCES = ("garbage-cn/valid/images", "fire-smoke-8/test/images", "fire-smoke-pd/valid/images")
ARITHMETIC = ("Conv", "ConvTranspose", "MatMul", "Gemm")


def model_flops(path: Path, size: tuple[int, int]) -> dict[str, float]:
    """FLOPs (2 x multiply-adds) of one photo of `size` (height, width) through `path`: the whole file, and the
    detector alone (what the first output, its boxes, depends on; the rest is the photo classifier)."""
    model = onnx.load(str(path))
    weights = {init.name: numpy_helper.to_array(init).shape for init in model.graph.initializer}
    nodes = [node for node in model.graph.node if node.op_type in ARITHMETIC]
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    known = {output.name for output in exposed.graph.output}
    for name in {name for node in nodes for name in (*node.input[:2], node.output[0])} - set(weights) - known:
        exposed.graph.output.append(helper.make_empty_tensor_value_info(name))
    with tempfile.TemporaryDirectory() as tmp:
        onnx.save(exposed, f"{tmp}/exposed.onnx")
        network = open_network(Path(tmp) / "exposed.onnx", runtime="onnxruntime")
        values = network.run(network.outputs, np.zeros((1, 3, *size), np.float32))
    shapes = dict(zip(network.outputs, (value.shape for value in values), strict=True))
    detector_nodes = detector_node_names(model)
    total = detector = 0.0
    for node in nodes:
        flops = node_flops(node, shapes, weights)
        total += flops
        if node.name in detector_nodes:
            detector += flops
    return {"whole": total, "detector": detector}


def detector_node_names(model: onnx.ModelProto) -> set[str]:
    """The nodes the first output (the detector's boxes) depends on."""
    producers = {output: node for node in model.graph.node for output in node.output}
    wanted, seen = [model.graph.output[0].name], set()
    while wanted:
        node = producers.get(wanted.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        wanted.extend(node.input)
    return seen


def node_flops(node: onnx.NodeProto, shapes: dict[str, tuple], weights: dict[str, tuple]) -> float:
    out = shapes[node.output[0]]
    if node.op_type in ("Conv", "ConvTranspose"):
        kernel = weights[node.input[1]]  # (out, in / groups, kh, kw) for Conv
        if node.op_type == "ConvTranspose":  # (in, out / groups, kh, kw): each input element feeds a kernel
            return 2.0 * np.prod(shapes.get(node.input[0], out)) * np.prod(kernel[1:])
        return 2.0 * np.prod(out) * np.prod(kernel[1:])
    second = weights.get(node.input[1]) or shapes[node.input[1]]
    inner = second[-1] if node.op_type == "Gemm" and transposed_b(node) else second[-2]
    return 2.0 * np.prod(out) * inner


def transposed_b(node: onnx.NodeProto) -> bool:
    return any(attribute.name == "transB" and attribute.i for attribute in node.attribute)


def peak_graphs() -> dict[str, tuple[onnx.ModelProto, float, tuple[int, ...]]]:
    """Compute-bound probes: name -> (graph, its FLOPs, its input shape)."""
    rng = np.random.default_rng(0)

    def graph(name: str, node: onnx.NodeProto, shape: tuple[int, ...], weight: np.ndarray) -> onnx.ModelProto:
        inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)]
        outputs = [helper.make_empty_tensor_value_info("y")]
        body = helper.make_graph([node], name, inputs, outputs, [numpy_helper.from_array(weight, "w")])
        return helper.make_model(body, opset_imports=[helper.make_opsetid("", 17)])

    n = 2048
    matmul = graph("matmul", helper.make_node("MatMul", ["x", "w"], ["y"]), (n, n), rng.random((n, n), np.float32))
    conv3 = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])
    wide = graph("conv3x3", conv3, (1, 256, 56, 56), rng.random((256, 256, 3, 3), np.float32))
    pointwise = graph(
        "conv1x1",
        helper.make_node("Conv", ["x", "w"], ["y"]),
        (8, 256, 56, 56),
        rng.random((512, 256, 1, 1), np.float32),
    )
    return {
        "MatMul 2048^3": (matmul, 2.0 * n**3, (n, n)),
        "conv 3x3 256->256 @56": (wide, 2.0 * 256 * 56 * 56 * 256 * 9, (1, 256, 56, 56)),
        "conv 1x1 256->512 @56 x8": (pointwise, 2.0 * 8 * 512 * 56 * 56 * 256, (8, 256, 56, 56)),
    }


def best_seconds(run: Callable[[], object], repeats: int) -> float:
    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def measure_peaks(runtime: str, repeats: int) -> dict[str, float]:
    """GFLOP/s of each probe on `runtime`, its best run."""
    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (graph, flops, shape) in peak_graphs().items():
            path = Path(tmp) / "probe.onnx"
            onnx.save(graph, str(path))
            network = open_network(path, runtime=runtime)
            x = np.random.default_rng(1).random(shape, np.float32)
            rates[name] = flops / best_seconds(lambda network=network, x=x: network.run(["y"], x), repeats) / 1e9
    return rates


def real_images(count: int, aspect: float | None = None) -> list[np.ndarray]:
    """`count` photos in turn from the sources; with `aspect` (width / height), each cropped about its centre."""
    paths = photos_in_turn([SHARED_DATASETS / source for source in SOURCES], count)
    return centre_cropped([load_image_file(path).pixels for path in paths], aspect)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=promoted_model(), help="ONNX model (default: the promoted one)")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5, help="runs of each peak probe (the best counts)")
    measured = [r for r in RUNTIMES if r != QUANTIZED_RUNTIME]
    parser.add_argument(
        "--runtime",
        nargs="+",
        default=measured,
        choices=measured,
        help="not onnxruntime-int8: its floor needs an INT8 peak and a mixed-precision count, not measured yet",
    )
    parser.add_argument("--aspect", type=aspect_ratio, help="crop each photo to this width:height (phones: 4:3)")
    args = parser.parse_args()

    images = real_images(args.images, args.aspect)
    reference = Detector.load(args.model, runtime="onnxruntime")
    shapes = [letterbox(image, reference.input_size, reference.stride)[0].shape[:2] for image in images]
    flops_at = {shape: model_flops(args.model, shape) for shape in {reference.input_size, *shapes}}
    flops = flops_at[reference.input_size]
    classifier = flops["whole"] - flops["detector"]
    print(
        f"model {args.model}: {flops['whole'] / 1e9:.2f} GFLOP a photo at {reference.input_size[0]} px "
        f"(detector {flops['detector'] / 1e9:.2f}, photo classifier {classifier / 1e9:.2f})"
    )
    photo_flops = float(np.mean([flops_at[shape]["detector"] + classifier for shape in shapes]))
    print(
        f"the {len(images)} photos, at the shapes the detector sees them ({len(set(shapes))} shapes): "
        f"{photo_flops / 1e9:.2f} GFLOP a photo on average"
    )
    print(f"{'runtime':<14} {'peak probe':<26} {'GFLOP/s':>9}")
    rows = []
    for runtime in args.runtime:
        try:
            detector = Detector.load(args.model, runtime=runtime)
        except ValueError as exc:  # OpenVINO not installed
            print(f"skipped {runtime}: {exc}")
            continue
        rates = measure_peaks(runtime, args.repeats)
        for name, rate in rates.items():
            print(f"{runtime:<14} {name:<26} {rate:>9.0f}")
        peak = max(rates.values()) * 1e9
        for _ in range(STATIC_AFTER + 1):  # as a running service: OpenVINO has compiled batch 1 alone
            detector.detect(images[:1])
        pixels = letterbox(images[0], detector.input_size)[0][None]
        network = detector.network
        networks = best_seconds(lambda network=network, pixels=pixels: network.run_pixels(network.outputs, pixels), 20)
        times = []
        for image in images:
            start = time.perf_counter()
            detector.detect([image])
            times.append(time.perf_counter() - start)
        rows.append((runtime, peak, networks, float(np.mean(times))))
    print()
    columns = ("peak GFLOP/s", "square floor", "networks ms", "x floor", "photos floor", "pipeline ms", "x floor")
    print(f"{'runtime':<14} " + " ".join(f"{column:>12}" for column in columns))
    for runtime, peak, networks, pipeline in rows:
        square, photos = flops["whole"] / peak, photo_flops / peak
        print(
            f"{runtime:<14} {peak / 1e9:>12.0f} {square * 1000:>12.2f} {networks * 1000:>12.2f} "
            f"{networks / square:>11.2f}x {photos * 1000:>12.2f} {pipeline * 1000:>12.2f} {pipeline / photos:>11.2f}x"
        )
    best = min(rows, key=lambda row: row[3])
    top = max(row[1] for row in rows)
    print(
        f"\nfastest pipeline: {best[0]}, {best[3] * 1000:.2f} ms a photo at batch 1; the CPU's floor for these "
        f"photos at its best measured peak ({top / 1e9:.0f} GFLOP/s): {photo_flops / top * 1000:.2f} ms"
    )


if __name__ == "__main__":
    main()
