"""Each CPU runtime (model/networks.py) on the promoted model and real photos, held to onnxruntime's answers.

onnxruntime is the reference. OpenVINO in float32 must give its answers to rounding; in
bfloat16 it computes with 8-bit mantissas, and the INT8 copy (training/quantize.py) with 8-bit
integers, so those two are held to stated tolerances instead. bfloat16 is what `auto` (the default)
runs where OpenVINO is installed and the CPU has BF16.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from model.images import load_image_file
from model.networks import (
    MAX_STATIC,
    QUANTIZED_RUNTIME,
    RUNTIMES,
    STATIC_AFTER,
    fastest_runtime,
    network_input,
    open_network,
)
from model.registry import Registry
from model.runtime import Detector, letterbox
from training.metrics import box_iou
from training.photo_features import detector_input

MODEL = Registry().promoted_path()
SOURCES = ("garbage-cn/valid/images", "fire-smoke-8/test/images", "fire-smoke-pd/valid/images", "fire-scenes-cair/fire")


@pytest.fixture(scope="module")
def images(shared_datasets: Path) -> list[np.ndarray]:
    """Four photos from each of four sources: garbage, CCTV fire and smoke, outdoor plumes and empty frames (all
    square), and web photos of other shapes, which the detector sees padded only to its stride."""
    paths = [path for folder in SOURCES for path in sorted((shared_datasets / folder).glob("*.jpg"))[:4]]
    return [load_image_file(path).pixels for path in paths]


@pytest.fixture(scope="module")
def reference(images: list[np.ndarray]) -> list:
    return Detector.load(MODEL, runtime="onnxruntime").detect(images, conf=0.05)


def problems_of(detector: Detector, found) -> list[list[tuple[str, str]]]:
    return [sorted((p.type, p.extent) for p in detector.problems(d)) for d in found]


def test_openvino_in_float32_gives_onnxruntimes_answers(images: list[np.ndarray], reference: list) -> None:
    detector = Detector.load(MODEL, runtime="openvino")
    found = detector.detect(images, conf=0.05)
    assert problems_of(detector, found) == problems_of(detector, reference)
    for got, want in zip(found, reference, strict=True):
        assert got.labels == want.labels
        np.testing.assert_allclose(got.xyxy, want.xyxy, atol=0.05)
        np.testing.assert_allclose(got.scores, want.scores, atol=1e-4)
        assert got.scene == pytest.approx(want.scene, abs=1e-4)


@pytest.mark.parametrize("runtime", ["openvino-bf16", QUANTIZED_RUNTIME])
def test_bfloat16_and_int8_stay_within_their_tolerance(runtime: str, images: list[np.ndarray], reference: list) -> None:
    """The classifier's scores within 0.1; every box of onnxruntime's scored 0.5 or more is found again, same
    label, overlapping it by IoU 0.8 or more, its score within 0.1."""
    found = Detector.load(MODEL, runtime=runtime).detect(images, conf=0.05)
    for got, want in zip(found, reference, strict=True):
        assert got.scene == pytest.approx(want.scene, abs=0.1)
        for box, score, label in zip(want.xyxy, want.scores, want.labels, strict=True):
            if score < 0.5:
                continue
            same = np.flatnonzero(np.array(got.labels) == label)
            assert len(same), (label, score)
            overlaps = box_iou(got.xyxy[same], box)[:, 0]
            best = same[overlaps.argmax()]
            assert overlaps.max() >= 0.8, (label, score)
            assert abs(float(got.scores[best]) - float(score)) <= 0.1


def batch_of(images: list[np.ndarray]) -> np.ndarray:
    return np.stack([detector_input(image, (416, 416)) for image in images])


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_the_outputs_asked_for_are_those_of_the_whole_run(runtime: str, images: list[np.ndarray]) -> None:
    """A tile asks for the detector alone: the answer is the whole run's, in the order asked for."""
    network = open_network(MODEL, runtime=runtime)
    assert network.outputs == ("output0", "scene") and network.runtime == runtime
    batch = batch_of(images[:3])
    boxes, scene = network.run(network.outputs, batch)
    (alone,) = network.run(["output0"], batch)
    np.testing.assert_array_equal(alone, boxes)
    swapped = network.run(["scene", "output0"], batch)
    np.testing.assert_array_equal(swapped[0], scene)
    np.testing.assert_array_equal(swapped[1], boxes)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_pixels_give_the_answers_of_the_input_made_from_them(runtime: str, images: list[np.ndarray]) -> None:
    """What detection feeds (uint8 BGR photos, converted by each runtime its own way, OpenVINO inside the
    compiled model) answers as the float input `network_input` makes from them does: to rounding, or in
    bfloat16 (other fused kernels) box corners within 4 px of 416 and scores within 0.1."""
    network = open_network(MODEL, runtime=runtime)
    pixels = np.stack([letterbox(image, (416, 416))[0] for image in images[:3]])
    (boxes, scene), (want_boxes, want_scene) = (
        network.run_pixels(network.outputs, pixels),
        network.run(network.outputs, network_input(pixels)),
    )
    bf16 = runtime == "openvino-bf16"
    np.testing.assert_allclose(boxes[:, :4], want_boxes[:, :4], atol=4 if bf16 else 1e-2)
    np.testing.assert_allclose(boxes[:, 4:], want_boxes[:, 4:], atol=0.1 if bf16 else 1e-4)
    np.testing.assert_allclose(scene, want_scene, atol=0.1 if bf16 else 1e-4)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_one_network_serves_several_threads_at_once(runtime: str, images: list[np.ndarray]) -> None:
    """The service runs detections on worker threads: concurrent runs of one network give each its own answer."""
    network = open_network(MODEL, runtime=runtime)
    batches = [batch_of([image]) for image in images[:8]]
    alone = [network.run(["output0", "scene"], b) for b in batches]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda b: network.run(["output0", "scene"], b), batches))
    for got, want in zip(together, alone, strict=True):
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


def test_a_shape_run_often_gets_its_own_compile_with_the_same_answers(images: list[np.ndarray]) -> None:
    """OpenVINO compiles a shape that keeps coming (a service's single photos, a scan's batches of 8) for that
    shape alone; in float32 its answers are the general compile's. At most `MAX_STATIC` such shapes."""
    network = open_network(MODEL, runtime="openvino")
    batches = {size: batch_of(images[:size]) for size in range(1, MAX_STATIC + 2)}
    first = {size: network.run(network.outputs, batch) for size, batch in batches.items()}
    for _ in range(STATIC_AFTER):
        for batch in batches.values():
            network.run(network.outputs, batch)
    static = [shape for _, _, shape in network._compiled if shape is not None]
    assert len(static) == MAX_STATIC and {shape[0] for shape in static} == set(range(1, MAX_STATIC + 1))
    for size, batch in batches.items():
        last = network.run(network.outputs, batch)
        np.testing.assert_allclose(last[0], first[size][0], atol=0.05)
        np.testing.assert_allclose(last[1], first[size][1], atol=1e-4)


def test_the_metadata_reads_the_same_on_every_runtime() -> None:
    read = {runtime: open_network(MODEL, runtime=runtime).metadata for runtime in RUNTIMES}
    envwatch = {runtime: {k: v for k, v in meta.items() if k.startswith("envwatch.")} for runtime, meta in read.items()}
    assert all(envwatch[runtime] == envwatch["onnxruntime"] for runtime in RUNTIMES)
    assert Detector.load(MODEL, runtime="openvino").fusion == Detector.load(MODEL).fusion


def test_an_unknown_runtime_is_refused_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVWATCH_RUNTIME", "tensorrt")
    with pytest.raises(ValueError, match=r"ENVWATCH_RUNTIME='tensorrt': expected auto or one of onnxruntime, openvino"):
        Detector.load(MODEL)


@pytest.fixture
def without_openvino(monkeypatch: pytest.MonkeyPatch):
    """What `import openvino` meets where the `fast` extra is not installed (and `auto` asked again)."""
    monkeypatch.setitem(sys.modules, "openvino", None)
    fastest_runtime.cache_clear()
    yield
    fastest_runtime.cache_clear()


def test_openvino_asked_for_but_not_installed_says_so(monkeypatch: pytest.MonkeyPatch, without_openvino: None) -> None:
    """No quiet fallback: a speed measured on `openvino` must be OpenVINO's."""
    monkeypatch.setenv("ENVWATCH_RUNTIME", "openvino")
    with pytest.raises(ValueError, match=r"needs OpenVINO, which is not installed"):
        Detector.load(MODEL)


@pytest.mark.parametrize("setting", ["", "auto"])
def test_auto_falls_back_to_onnxruntime_without_openvino(
    monkeypatch: pytest.MonkeyPatch, without_openvino: None, setting: str
) -> None:
    """In float32: the promoted model ships an INT8 copy, which runs only where it is named (model/networks.py)."""
    monkeypatch.setenv("ENVWATCH_RUNTIME", setting)
    assert Detector.load(MODEL).network.runtime == "onnxruntime"


@pytest.mark.parametrize("setting", ["", "auto"])
def test_auto_runs_bfloat16_where_openvino_and_the_cpu_have_it(monkeypatch: pytest.MonkeyPatch, setting: str) -> None:
    """The `fast` extra is part of the test install; whether this CPU computes in BF16 is OpenVINO's to say."""
    import openvino as ov

    bf16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    monkeypatch.setenv("ENVWATCH_RUNTIME", setting)
    assert Detector.load(MODEL).network.runtime == ("openvino-bf16" if bf16 else "onnxruntime")


@pytest.fixture
def openvino_cannot(tmp_path: Path) -> Path:
    """A graph onnxruntime runs and OpenVINO cannot read: a determinant (ONNX `Det`, which it has no rule for)."""
    from onnx import TensorProto, helper, save

    node = helper.make_node("Det", ["x"], ["y"])
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 4])]
    graph = helper.make_graph([node], "det", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(tmp_path / "det.onnx"))
    return tmp_path / "det.onnx"


def test_auto_runs_on_onnxruntime_what_openvino_cannot_and_says_so(
    openvino_cannot: Path, caplog: pytest.LogCaptureFixture
) -> None:
    network = open_network(openvino_cannot, runtime="auto")
    assert network.runtime == "onnxruntime"
    assert network.run(["y"], np.eye(4, dtype=np.float32) * 2)[0] == pytest.approx(16)
    if fastest_runtime() != "onnxruntime":
        assert "OpenVINO cannot run" in caplog.text and "Det" in caplog.text


def test_openvino_named_for_a_graph_it_cannot_compile_is_refused_at_load(openvino_cannot: Path) -> None:
    with pytest.raises(ValueError, match=r"runtime 'openvino' cannot run .*det\.onnx: .*No conversion rule .*Det"):
        open_network(openvino_cannot, runtime="openvino")
