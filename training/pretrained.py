"""Read the official YOLOv5n COCO checkpoint without running the code it was pickled with.

The file is a pickle of the old yolov5 repository's classes (`models.yolo.Model`,
`models.common.Conv`, ...). Importing that repository would execute foreign code, so the
unpickler below answers those names with an inert stand-in and accepts nothing else beyond torch
tensors and plain containers. Only the tensors are taken; the stand-ins never run.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from types import SimpleNamespace

import torch

FOREIGN_PREFIXES = ("models.", "utils.", "models", "utils")
ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"),
    ("builtins", "set"),
    ("__builtin__", "set"),
    ("builtins", "slice"),
    ("copyreg", "_reconstructor"),
    ("builtins", "object"),
    ("argparse", "Namespace"),
    ("pathlib", "PosixPath"),
    ("pathlib", "WindowsPath"),
}
TORCH_MODULE_PREFIXES = ("torch.nn.modules.", "torch._utils", "torch.storage", "torch.nn.parameter")


class StandIn:
    """Takes the pickled state of a foreign class and does nothing else."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __setstate__(self, state: object) -> None:
        if isinstance(state, dict):
            self.__dict__.update(state)


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> type:
        if module.split(".")[0] in ("models", "utils"):
            return type(name, (StandIn,), {"__module__": "envwatch.standin"})
        if (module, name) in ALLOWED_GLOBALS:
            return super().find_class(module, name)
        if module == "torch" or module.startswith(TORCH_MODULE_PREFIXES):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a foreign checkpoint")


restricted_pickle = SimpleNamespace(Unpickler=RestrictedUnpickler, load=pickle.load, __name__="restricted_pickle")


def _tensors(obj: object, prefix: str, out: dict[str, torch.Tensor]) -> None:
    """Walk a module tree the way `state_dict()` would, for real modules and stand-ins alike."""
    state = obj.__dict__
    for name, value in state.get("_parameters", {}).items():
        if value is not None:
            out[prefix + name] = value.detach()
    for name, value in state.get("_buffers", {}).items():
        if value is not None and name not in state.get("_non_persistent_buffers_set", set()):
            out[prefix + name] = value.detach()
    for name, child in state.get("_modules", {}).items():
        if child is not None:
            _tensors(child, f"{prefix}{name}.", out)


def load_yolov5_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors by name, cast to float32 (the release file is fp16)."""
    checkpoint = torch.load(path, map_location="cpu", pickle_module=restricted_pickle, weights_only=False)
    model = checkpoint.get("ema") or checkpoint["model"]
    tensors: dict[str, torch.Tensor] = {}
    _tensors(model, "", tensors)
    return {name: t.float() if t.is_floating_point() else t for name, t in tensors.items()}


def transfer_backbone_and_neck(model: torch.nn.Module, path: Path) -> int:
    """Copy every tensor whose name and shape match into `model`; the detection head stays new.

    Returns the number of tensors copied. YOLOv5u's layers 0-23 match the v7.0 checkpoint one to
    one; its anchor-free head (layer 24) does not and is left to training.
    """
    source = load_yolov5_state_dict(path)
    target = model.state_dict()
    head = f"model.{len(model.model) - 1}."
    matched = {
        name: tensor
        for name, tensor in source.items()
        if name in target and not name.startswith(head) and target[name].shape == tensor.shape
    }
    model.load_state_dict(matched, strict=False)
    return len(matched)
