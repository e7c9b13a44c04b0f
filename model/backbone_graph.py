"""Where the photo classifier's backbone ends inside a model file, and new heads wired after it.

A v4-style model (training/scene.py's `attach`) holds a pretrained ImageNet backbone whose pooled
features feed the `scene` heads: `scene = sigmoid(Gemm(ReduceMean(map)))`. Learning a new problem
type from photo labels (training/learn.py) needs those pooled features, and locating it on the
photo needs the spatial map before the pool. Both are found here by walking back from the `scene`
output, so they work on whichever version is promoted (v4, or a later one built by the same
`envwatch scene attach`), without rebuilding anything and without torch: only the onnx library.

A learned version is the promoted file unchanged plus nodes under the `learned/` prefix: one
linear head per learned type on the pooled features (output `learned`, scores) and the same
weights as a 1×1 convolution on the spatial map (output `learned_map`, logits per cell: a class
activation map, whose mean over the cells is exactly the head's logit). Learning again on a
learned version first strips those nodes, so heads never stack.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

PREFIX = "learned/"
SCORES = "learned"
MAP = "learned_map"
POOLS = ("ReduceMean", "GlobalAveragePool")
PASS_THROUGH = ("Flatten", "Reshape", "Squeeze", "Identity")


class GraphError(ValueError):
    """The model file has no photo classifier whose backbone can be found."""


@dataclass(frozen=True)
class Taps:
    """Tensor names in the graph: the pooled features (N, D) and the spatial map they pool (N, D, h, w)."""

    input: str
    pooled: str
    spatial: str
    channels: int


def find_taps(model: onnx.ModelProto, scene_output: str = "scene") -> Taps:
    """The backbone's pooled features and spatial map behind `scene_output`'s linear heads."""
    producers = {name: node for node in model.graph.node for name in node.output}
    initializers = {i.name: i for i in model.graph.initializer}
    node = producers.get(scene_output)
    while node is not None and node.op_type in ("Sigmoid", "Identity"):
        node = producers.get(node.input[0])
    if node is None or node.op_type != "Gemm" or node.input[1] not in initializers:
        raise GraphError(f"no linear head (Gemm) feeds output {scene_output!r}: the model has no photo classifier")
    pooled = node.input[0]
    channels = int(initializers[node.input[1]].dims[1 if _attr(node, "transB", 0) else 0])
    source = producers.get(pooled)
    while source is not None and source.op_type in PASS_THROUGH:
        source = producers.get(source.input[0])
    if source is None or source.op_type not in POOLS:
        raise GraphError(f"the head on {pooled!r} is not fed by a global average pool of a spatial map")
    if source.op_type == "ReduceMean" and sorted(_attr(source, "axes", [])) != [2, 3]:
        raise GraphError(f"{source.name}: pools over axes {_attr(source, 'axes', [])}, not the spatial ones")
    return Taps(model.graph.input[0].name, pooled, source.input[0], channels)


def _attr(node: onnx.NodeProto, name: str, default: object) -> object:
    found = next((a for a in node.attribute if a.name == name), None)
    return helper.get_attribute_value(found) if found is not None else default


def backbone(model: onnx.ModelProto, taps: Taps) -> onnx.ModelProto:
    """The subgraph from the model's input to the pooled features: the feature extractor alone (no detector).

    The nodes the pooled features depend on, found backwards from them (onnx's own Extractor needs
    shape information the merged graph lacks for inner tensors).
    """
    producers = {name: node for node in model.graph.node for name in node.output}
    needed, todo, nodes = set(), [taps.pooled], []
    while todo:
        name = todo.pop()
        node = producers.get(name)
        if node is None or id(node) in needed:
            continue
        needed.add(id(node))
        nodes.append(node)
        todo.extend(i for i in node.input if i)
    order = {id(node): n for n, node in enumerate(model.graph.node)}
    nodes.sort(key=lambda node: order[id(node)])
    used = {i for node in nodes for i in node.input}
    graph = helper.make_graph(
        nodes,
        "backbone",
        [i for i in model.graph.input if i.name == taps.input],
        [helper.make_tensor_value_info(taps.pooled, TensorProto.FLOAT, ["batch", taps.channels])],
        [i for i in model.graph.initializer if i.name in used],
    )
    return helper.make_model(graph, opset_imports=list(model.opset_import), ir_version=model.ir_version)


def identity(graph: onnx.ModelProto) -> str:
    """A digest of the backbone's nodes and weights: two versions sharing it share cached features."""
    digest = hashlib.sha256()
    for node in graph.graph.node:
        digest.update(node.op_type.encode())
        for attribute in node.attribute:
            digest.update(attribute.SerializeToString())
    for initializer in graph.graph.initializer:
        digest.update(numpy_helper.to_array(initializer).tobytes())
    return digest.hexdigest()[:16]


def stripped(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` without learned heads (nodes, weights and outputs under `PREFIX`, outputs `SCORES` and `MAP`)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    keep_nodes = [n for n in out.graph.node if not n.name.startswith(PREFIX)]
    keep_init = [i for i in out.graph.initializer if not i.name.startswith(PREFIX)]
    keep_out = [o for o in out.graph.output if o.name not in (SCORES, MAP)]
    for field, kept in ((out.graph.node, keep_nodes), (out.graph.initializer, keep_init), (out.graph.output, keep_out)):
        copies = [type(item)() for item in kept]
        for copy, item in zip(copies, kept, strict=True):
            copy.CopyFrom(item)
        del field[:]
        field.extend(copies)
    del out.metadata_props[:]
    out.metadata_props.extend(p for p in model.metadata_props if p.key != "envwatch.learned")
    return out


def with_heads(model: onnx.ModelProto, taps: Taps, weight: np.ndarray, bias: np.ndarray) -> onnx.ModelProto:
    """`model` (learned heads stripped) plus one head per row of `weight` (K, D): outputs `SCORES` and `MAP`."""
    if weight.ndim != 2 or weight.shape[1] != taps.channels or bias.shape != (weight.shape[0],):
        raise GraphError(f"heads of shape {weight.shape} / {bias.shape} do not fit {taps.channels} features")
    out = stripped(model)
    w = weight.astype(np.float32)
    out.graph.initializer.extend(
        [
            numpy_helper.from_array(w, PREFIX + "weight"),
            numpy_helper.from_array(bias.astype(np.float32), PREFIX + "bias"),
            numpy_helper.from_array(w[:, :, None, None], PREFIX + "map_weight"),
        ]
    )
    p = PREFIX
    out.graph.node.extend(
        [
            helper.make_node("Gemm", [taps.pooled, p + "weight", p + "bias"], [p + "logits"], p + "head", transB=1),
            helper.make_node("Sigmoid", [p + "logits"], [SCORES], p + "sigmoid"),
            helper.make_node(
                "Conv", [taps.spatial, p + "map_weight", p + "bias"], [MAP], p + "cam", kernel_shape=(1, 1)
            ),
        ]
    )
    k = weight.shape[0]
    out.graph.output.extend(
        [
            helper.make_tensor_value_info(SCORES, TensorProto.FLOAT, ["batch", k]),
            helper.make_tensor_value_info(MAP, TensorProto.FLOAT, ["batch", k, "cells_y", "cells_x"]),
        ]
    )
    onnx.checker.check_model(out)
    return out
