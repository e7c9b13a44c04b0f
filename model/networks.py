"""One ONNX graph run on a CPU runtime: onnxruntime everywhere, OpenVINO where it is installed and chosen.

onnxruntime is the reference: it ships with the package, and every test and number holds to it.
OpenVINO (the `fast` extra) runs the same file, chosen with `ENVWATCH_RUNTIME` (`RUNTIMES`):
`openvino` computes in float32 and gives onnxruntime's answers to rounding; `openvino-bf16` lets
it compute in bfloat16 where the CPU has it (AVX-512 BF16, AMX), which is faster and not exact
(benchmarks/runtime_bench.py prints the speed, tests/test_networks.py holds the answers).
Where OpenVINO is asked for and not installed, loading says so instead of quietly falling back,
so that a number measured is a number of the runtime named.

A `Network` answers with only the outputs asked for. onnxruntime prunes the rest itself;
OpenVINO gets one compiled model per set of outputs, so that a tile (detector alone) does not
also pay for the photo classifier.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort

RUNTIME_VARIABLE = "ENVWATCH_RUNTIME"
OPENVINO_PRECISIONS = {"openvino": "f32", "openvino-bf16": "bf16"}
"""OpenVINO's runtimes and the inference precision each asks it for."""
RUNTIMES = ("onnxruntime", *OPENVINO_PRECISIONS)
DEFAULT_RUNTIME = "onnxruntime"


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


class OnnxRuntimeNetwork:
    def __init__(self, path: Path, threads: int | None = None) -> None:
        options = ort.SessionOptions()
        # Idle threads sleep instead of spinning: scan decodes the next photos on a thread while the
        # network runs (inference_api/scan.py), and on 2 cores spinning threads starved that decoding
        # (envwatch scan 1.48x `yolo predict` with spinning, 1.74x without; benchmarks/scan_bench.py).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        self.path, self.runtime = Path(path), "onnxruntime"
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.outputs = tuple(o.name for o in self.session.get_outputs())
        self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)

    def run(self, outputs: Sequence[str], batch: np.ndarray) -> list[np.ndarray]:
        return self.session.run(list(outputs), {self.input_name: batch})


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
        self._compiled: dict[tuple[str, ...], object] = {}
        self._lock = threading.Lock()

    def _compiled_for(self, outputs: tuple[str, ...]):
        """The model compiled for just `outputs` (once per set; each call then makes its own infer request)."""
        with self._lock:
            if outputs not in self._compiled:
                import openvino as ov

                graph = self.model
                if outputs != self.outputs:
                    graph = ov.Model([self.model.output(name) for name in outputs], self.model.get_parameters())
                self._compiled[outputs] = self.core.compile_model(graph, "CPU", self.config)
            return self._compiled[outputs]

    def run(self, outputs: Sequence[str], batch: np.ndarray) -> list[np.ndarray]:
        wanted = tuple(outputs)
        order = wanted if set(wanted) != set(self.outputs) else self.outputs
        request = self._compiled_for(order).create_infer_request()
        request.infer({0: batch})
        found = {name: request.get_output_tensor(i).data.copy() for i, name in enumerate(order)}
        return [found[name] for name in wanted]


def open_network(path: Path, threads: int | None = None, runtime: str | None = None) -> Network:
    """`path` on `runtime` (default: `ENVWATCH_RUNTIME`, else onnxruntime)."""
    named = f"runtime {runtime!r}"
    if runtime is None:
        runtime = os.environ.get(RUNTIME_VARIABLE) or DEFAULT_RUNTIME
        named = f"{RUNTIME_VARIABLE}={runtime!r}"
    if runtime not in RUNTIMES:
        raise ValueError(f"{named}: expected one of {', '.join(RUNTIMES)}")
    if runtime == "onnxruntime":
        return OnnxRuntimeNetwork(path, threads)
    try:
        import openvino  # noqa: F401
    except ImportError as exc:
        raise ValueError(
            f"runtime {runtime!r} needs OpenVINO, which is not installed (pip install 'envwatch[fast]')"
        ) from exc
    return OpenVinoNetwork(path, threads, runtime)
