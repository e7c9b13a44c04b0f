"""One ONNX graph run on a CPU runtime: the fastest one that keeps the answers, onnxruntime everywhere else.

onnxruntime is the reference: it ships with the package, and every test and number holds to it.
OpenVINO (the `fast` extra) runs the same file: `openvino` computes in float32 and gives
onnxruntime's answers to rounding; `openvino-bf16` computes in bfloat16 where the CPU has it
(AVX-512 BF16, AMX), which is faster and not exact (tests/test_networks.py holds it to stated
tolerances; on val it keeps every label's AP50 within 0.003 and problem recall and false alarms
within 0.01, model card v6). `onnxruntime-int8` runs the file's INT8 copy (`<name>.int8.onnx`
beside it, made by `envwatch models quantize`, training/quantize.py) on onnxruntime: on a CPU
without BF16 (AVX2 only, measured on a Zen 3 EPYC) 1.3-1.4x faster than float32 for v8's two
networks, held to stated tolerances like bfloat16 (tests/test_networks.py). A copy records the
sha256 of the file it was made from, and a copy made from another file (the model re-exported
since) is never run.

`ENVWATCH_RUNTIME` chooses one of `RUNTIMES`; unset or `auto`, `fastest_runtime()` does:
openvino-bf16 where OpenVINO is installed and the CPU computes in BF16, onnxruntime otherwise. Not
OpenVINO in float32 on CPUs without BF16: measured here it was faster on tiles (1.54 s against 2.11 s
a 12 MP frame) but slower over a whole `envwatch scan` (2.47x `yolo predict` against 2.91x, its
compile time), so the reference keeps those. Nor the INT8 copy, which must be named: on val it
kept problem recall and false alarms within 0.01 but lost 2.5 points of exposed garbage's AP50, and
on test it found 510 of 543 fire photos against the float file's 520 (model card v8); `auto` does
not trade found fires for speed.
Where a runtime is asked for by name and cannot run (OpenVINO not installed, no current INT8 copy),
loading says so instead of quietly falling back, so that a number measured is a number of the
runtime named.

A `Network` answers with only the outputs asked for, and computes only what those need: each
runtime gets one session (or compiled model) per set of outputs, so that a tile (detector alone)
does not also pay for the photo classifier. onnxruntime does not prune unused outputs by itself
(the whole graph, asked for boxes only, took 19 ms against the detector's own 14 ms).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort

log = logging.getLogger("envwatch.networks")

RUNTIME_VARIABLE = "ENVWATCH_RUNTIME"
OPENVINO_PRECISIONS = {"openvino": "f32", "openvino-bf16": "bf16"}
"""OpenVINO's runtimes and the inference precision each asks it for."""
QUANTIZED_RUNTIME = "onnxruntime-int8"
RUNTIMES = ("onnxruntime", *OPENVINO_PRECISIONS, QUANTIZED_RUNTIME)
REFERENCE_RUNTIME = "onnxruntime"
QUANTIZED_SUFFIX = ".int8.onnx"
QUANTIZED_FROM = "envwatch.quantized_from"
"""Metadata of an INT8 copy: the sha256 of the float file it was made from."""
AUTO = "auto"
"""`ENVWATCH_RUNTIME`'s default: `fastest_runtime()`."""
STATIC_AFTER = 32
"""Runs of one input shape after which OpenVINO gets a model compiled for that shape alone: 14% faster
(6.9 against 8.0 ms a photo for v6's two networks in bf16, batch 1; 5.3 against 6.2 at batch 8) but
0.3-0.5 s to compile, which a short scan would not win back."""
MAX_STATIC = 4
"""Shapes compiled alone at most, per network (each holds its own copy of the weights)."""


class Network(Protocol):
    path: Path
    runtime: str
    input_name: str
    outputs: tuple[str, ...]
    """The graph's outputs, in the file's order."""
    metadata: dict[str, str]
    """The file's metadata (`metadata_props`), as stored: JSON text for envwatch's keys."""

    def run(self, outputs: Sequence[str], batch: np.ndarray) -> list[np.ndarray]:
        """The named outputs for a float32 NCHW batch, in the order named. Safe to call from several threads."""
        ...

    def run_pixels(self, outputs: Sequence[str], pixels: np.ndarray) -> list[np.ndarray]:
        """`run` on `network_input(pixels)`: photos as decoded, uint8 NHWC BGR, already the input's size. Each
        runtime converts them as it does best (OpenVINO inside the compiled model)."""
        ...


def network_input(pixels: np.ndarray) -> np.ndarray:
    """The graph's input for uint8 NHWC BGR photos: float32 NCHW RGB in 0..1, as Ultralytics trained it."""
    return np.ascontiguousarray(pixels[..., ::-1].transpose(0, 3, 1, 2), dtype=np.float32) / 255.0


class OnnxRuntimeNetwork:
    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.options = ort.SessionOptions()
        # Idle threads sleep instead of spinning: scan decodes the next photos on a thread while the
        # network runs (inference_api/scan.py), and on 2 cores spinning threads starved that decoding
        # (envwatch scan 1.48x `yolo predict` with spinning, 1.74x without; benchmarks/scan_bench.py).
        self.options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            self.options.intra_op_num_threads = threads
        self.path, self.runtime = Path(path), "onnxruntime"
        # The file's bytes are kept to cut from later: the file itself may be gone by then (a Ray actor
        # loads its model from a temporary copy, inference_api/scan_ray.py).
        self._model = self.path.read_bytes()
        session = self._session(self._model)
        self.input_name = session.get_inputs()[0].name
        self.outputs = tuple(o.name for o in session.get_outputs())
        self.metadata = dict(session.get_modelmeta().custom_metadata_map)
        self._sessions: dict[frozenset[str], ort.InferenceSession] = {frozenset(self.outputs): session}
        self._lock = threading.Lock()

    def _session(self, model: str | bytes) -> ort.InferenceSession:
        return ort.InferenceSession(model, self.options, providers=["CPUExecutionProvider"])

    def _session_for(self, outputs: frozenset[str]) -> ort.InferenceSession:
        """A session of the graph cut down to what `outputs` need (made once per set of outputs)."""
        with self._lock:
            if outputs not in self._sessions:
                import onnx  # here, not at the top: importing it takes 0.5 s, and whole photos never need it

                graph = onnx.load_from_string(self._model)
                wanted = [name for name in self.outputs if name in outputs]
                cut = onnx.utils.Extractor(graph).extract_model([self.input_name], wanted)
                self._sessions[outputs] = self._session(cut.SerializeToString())
            return self._sessions[outputs]

    def run(self, outputs: Sequence[str], batch: np.ndarray) -> list[np.ndarray]:
        return self._session_for(frozenset(outputs)).run(list(outputs), {self.input_name: batch})

    def run_pixels(self, outputs: Sequence[str], pixels: np.ndarray) -> list[np.ndarray]:
        return self.run(outputs, network_input(pixels))


def quantized_copy(path: Path) -> Path:
    """Where the INT8 copy of the model file at `path` lives: beside it, `<name>.int8.onnx`."""
    return path.with_name(f"{path.stem}{QUANTIZED_SUFFIX}")


def quantized_from(path: Path) -> str:
    """What a copy made from the model file at `path` records as `QUANTIZED_FROM` (JSON text of its sha256):
    training/quantize.py writes it, `QuantizedNetwork` checks it."""
    return json.dumps(hashlib.sha256(Path(path).read_bytes()).hexdigest())


class QuantizedNetwork(OnnxRuntimeNetwork):
    """onnxruntime on the INT8 copy of the file at `path`; refused (ValueError) where there is no copy or the
    copy was made from another file, whose answers it would give in this file's name."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        copy = quantized_copy(Path(path))
        if not copy.is_file():
            raise ValueError(f"runtime {QUANTIZED_RUNTIME!r} needs {copy}: make it with `envwatch models quantize`")
        super().__init__(copy, threads)
        self.runtime = QUANTIZED_RUNTIME
        if self.metadata.pop(QUANTIZED_FROM, None) != quantized_from(path):
            raise ValueError(
                f"{copy.name} was not made from this {Path(path).name} (the model changed since): "
                "make it again with `envwatch models quantize`"
            )


class OpenVinoNetwork:
    def __init__(self, path: Path, threads: int | None = None, runtime: str = "openvino") -> None:
        import openvino as ov

        self.path, self.runtime = Path(path), runtime
        self.core = ov.Core()
        self.model = self.core.read_model(str(self.path))
        self.input_name = self.model.inputs[0].get_any_name()
        self.outputs = tuple(o.get_any_name() for o in self.model.outputs)
        framework = self.model.get_rt_info()["framework"] if self.model.has_rt_info("framework") else {}
        self.metadata = {key: framework[key].astype(str) for key in framework}
        precision = OPENVINO_PRECISIONS[runtime]
        self.config: dict[str, object] = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": precision}
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = threads
        self._pixel_model = None
        self._compiled: dict[tuple[bool, tuple[str, ...], tuple[int, ...] | None], object] = {}
        self._runs: Counter[tuple[bool, tuple[str, ...], tuple[int, ...]]] = Counter()
        self._lock = threading.Lock()
        # A model of photos gets what whole photos run compiled now rather than at the first photo: a file
        # OpenVINO cannot compile fails here, at load (and `auto` then takes onnxruntime), and a hot-swapped
        # model's first request does not wait for it. Other graphs (benchmarks' probes) compile when run.
        shape = self.model.inputs[0].get_partial_shape()
        if shape.rank.is_static and shape.rank.get_length() == 4 and shape[1].is_static and shape[1].get_length() == 3:
            self._compiled[True, self.outputs, None] = self._compile(True, self.outputs, None)

    def _pixel_graph(self):
        """The model with `network_input` in front of it, as OpenVINO preprocessing steps: it fuses them into
        the first convolution (0.7 ms a photo less than converting with numpy first, v6 in bf16)."""
        if self._pixel_model is None:
            import openvino as ov
            from openvino.preprocess import ColorFormat, PrePostProcessor

            steps = PrePostProcessor(self.model.clone())
            given = steps.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
            given.set_color_format(ColorFormat.BGR)
            steps.input().model().set_layout(ov.Layout("NCHW"))
            steps.input().preprocess().convert_element_type(ov.Type.f32).convert_color(ColorFormat.RGB).scale(255.0)
            self._pixel_model = steps.build()
        return self._pixel_model

    def _compiled_for(self, pixels: bool, outputs: tuple[str, ...], shape: tuple[int, ...]):
        """The model (taking pixels, or the float input) compiled for just `outputs`: for any input shape, or for
        `shape` alone once that shape has run `STATIC_AFTER` times (each call then makes its own infer request)."""
        with self._lock:
            self._runs[pixels, outputs, shape] += 1
            static = (pixels, outputs, shape) in self._compiled
            if not static and self._runs[pixels, outputs, shape] > STATIC_AFTER:
                static = sum(key[2] is not None for key in self._compiled) < MAX_STATIC
            key = (pixels, outputs, shape if static else None)
            if key not in self._compiled:
                self._compiled[key] = self._compile(*key)
            return self._compiled[key]

    def _compile(self, pixels: bool, outputs: tuple[str, ...], shape: tuple[int, ...] | None):
        import openvino as ov

        graph = self._pixel_graph() if pixels else self.model
        graph = graph.clone() if shape else graph  # reshaping changes a model in place
        if outputs != self.outputs:
            graph = ov.Model([graph.output(name) for name in outputs], graph.get_parameters())
        if shape:
            graph.reshape({graph.inputs[0]: list(shape)})
        return self.core.compile_model(graph, "CPU", self.config)

    def run(self, outputs: Sequence[str], batch: np.ndarray) -> list[np.ndarray]:
        return self._run(False, outputs, batch)

    def run_pixels(self, outputs: Sequence[str], pixels: np.ndarray) -> list[np.ndarray]:
        return self._run(True, outputs, pixels)

    def _run(self, pixels: bool, outputs: Sequence[str], batch: np.ndarray) -> list[np.ndarray]:
        wanted = tuple(outputs)
        order = wanted if set(wanted) != set(self.outputs) else self.outputs
        request = self._compiled_for(pixels, order, batch.shape).create_infer_request()
        request.infer({0: batch})
        found = {name: request.get_output_tensor(i).data.copy() for i, name in enumerate(order)}
        return [found[name] for name in wanted]


@functools.cache
def fastest_runtime() -> str:
    """openvino-bf16 where OpenVINO is installed and reports BF16 for this CPU, else onnxruntime (module docstring)."""
    try:
        import openvino as ov
    except ImportError:
        return REFERENCE_RUNTIME
    if "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        return "openvino-bf16"
    return REFERENCE_RUNTIME


def measuring_runtime() -> str:
    """What choosing and measuring run on (fusion and tile thresholds, `envwatch evaluate`, probe scores):
    `ENVWATCH_RUNTIME` where it is set, else the reference, so that a version's thresholds and its
    card's numbers do not depend on the machine that made them."""
    return os.environ.get(RUNTIME_VARIABLE) or REFERENCE_RUNTIME


def open_network(path: Path, threads: int | None = None, runtime: str | None = None) -> Network:
    """`path` on `runtime` (default: `ENVWATCH_RUNTIME`, else `auto`: `fastest_runtime()`)."""
    named = f"runtime {runtime!r}"
    if runtime is None:
        runtime = os.environ.get(RUNTIME_VARIABLE) or AUTO
        named = f"{RUNTIME_VARIABLE}={runtime!r}"
    if runtime == AUTO:
        chosen = fastest_runtime()
        if chosen == REFERENCE_RUNTIME:
            return OnnxRuntimeNetwork(path, threads)
        try:
            return OpenVinoNetwork(path, threads, chosen)
        except RuntimeError as exc:  # OpenVINO's own error type, for graphs it cannot read or compile
            log.warning("OpenVINO cannot run %s (%s): running it on onnxruntime", path, openvino_reason(exc))
            return OnnxRuntimeNetwork(path, threads)
    if runtime not in RUNTIMES:
        raise ValueError(f"{named}: expected {AUTO} or one of {', '.join(RUNTIMES)}")
    if runtime == REFERENCE_RUNTIME:
        return OnnxRuntimeNetwork(path, threads)
    if runtime == QUANTIZED_RUNTIME:
        return QuantizedNetwork(path, threads)
    try:
        import openvino  # noqa: F401
    except ImportError as exc:
        raise ValueError(
            f"runtime {runtime!r} needs OpenVINO, which is not installed (pip install 'envwatch[fast]')"
        ) from exc
    try:
        return OpenVinoNetwork(path, threads, runtime)
    except RuntimeError as exc:
        raise ValueError(f"runtime {runtime!r} cannot run {path}: {openvino_reason(exc)}") from exc


def openvino_reason(error: Exception) -> str:
    """OpenVINO's messages open with C++ source positions; the cause is in the lines after them."""
    noise = ("Exception from src/", "Check '", "To facilitate")
    lines = [line.strip() for line in str(error).splitlines() if line.strip() and not line.strip().startswith(noise)]
    return " ".join(lines) or type(error).__name__
