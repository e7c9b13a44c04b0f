"""Learned heads on the shipped model's backbone: found in the graph, exact, located, and fitted like scene.py's.

Run on the real v4 file (a shipped model with both networks) and real photos; nothing is mocked.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from learning_helpers import interiors, outdoors

from model import backbone_graph
from model.learned import cam_box
from model.registry import Registry
from model.runtime import letterbox
from training.photo_features import PhotoFeatures, detector_input
from training.photo_heads import choose_threshold, fit_logistic, scores

V4 = Registry().path_of("v4")


@pytest.fixture(scope="module")
def v4() -> onnx.ModelProto:
    return onnx.load(str(V4))


def test_the_backbone_found_in_the_graph_gives_the_features_the_scene_heads_read(v4: onnx.ModelProto) -> None:
    taps = backbone_graph.find_taps(v4)
    assert taps.channels == 1280
    session = ort.InferenceSession(backbone_graph.backbone(v4, taps).SerializeToString())
    photos = [interiors()[0], outdoors()[0]]
    batch = np.stack([detector_input(_pixels(p), (416, 416)) for p in photos])
    (features,) = session.run(None, {"images": batch})
    weights = {i.name: onnx.numpy_helper.to_array(i) for i in v4.graph.initializer}
    expected = 1 / (1 + np.exp(-(features @ weights["scene/head.weight"].T + weights["scene/head.bias"])))
    (scene,) = ort.InferenceSession(str(V4)).run(["scene"], {"images": batch})
    np.testing.assert_allclose(expected, scene, atol=1e-5)


def _pixels(path: Path) -> np.ndarray:
    from model.images import load_image_file

    return load_image_file(path).pixels


def test_a_detector_without_a_classifier_has_no_backbone_to_learn_on() -> None:
    with pytest.raises(backbone_graph.GraphError, match="no photo classifier"):
        backbone_graph.find_taps(onnx.load(str(Registry().path_of("v3"))))


def test_added_heads_score_exactly_and_their_map_averages_to_the_logit(v4: onnx.ModelProto, tmp_path: Path) -> None:
    taps = backbone_graph.find_taps(v4)
    rng = np.random.default_rng(0)
    weight, bias = rng.normal(0, 0.02, (2, 1280)).astype(np.float32), np.array([0.1, -0.2], np.float32)
    once = backbone_graph.with_heads(v4, taps, weight, bias)
    twice = backbone_graph.with_heads(once, taps, weight, bias)
    assert len(twice.graph.node) == len(once.graph.node), "learning again replaces the heads, never stacks them"
    batch = detector_input(_pixels(interiors()[1]), (416, 416))[None]
    scene, learned, cam = ort.InferenceSession(twice.SerializeToString()).run(
        ["scene", "learned", "learned_map"], {"images": batch}
    )
    (features,) = ort.InferenceSession(backbone_graph.backbone(v4, taps).SerializeToString()).run(
        None, {"images": batch}
    )
    logits = features @ weight.T + bias
    np.testing.assert_allclose(learned, 1 / (1 + np.exp(-logits)), atol=1e-5)
    np.testing.assert_allclose(cam.mean(axis=(2, 3)), logits, atol=1e-4)
    (original,) = ort.InferenceSession(str(V4)).run(["scene"], {"images": batch})
    np.testing.assert_array_equal(scene, original)
    assert backbone_graph.identity(backbone_graph.backbone(twice, taps)) == backbone_graph.identity(
        backbone_graph.backbone(v4, taps)
    )


def test_the_approximate_box_lies_around_the_strongest_cells_in_photo_pixels() -> None:
    photo = np.zeros((300, 600, 3), np.uint8)  # wide: letterboxed with bands above and below
    _, fit = letterbox(photo, (416, 416))
    cam = np.zeros((7, 7), np.float32)
    cam[4:6, 5:7] = 5.0  # lower right of the network input
    x1, y1, x2, y2 = cam_box(cam, (416, 416), (fit.pad_x, fit.pad_y), (fit.gain_x, fit.gain_y), (600, 300))
    assert 300 < x1 < x2 <= 600 and 100 < y1 < y2 <= 300, (x1, y1, x2, y2)
    assert (x2 - x1) * (y2 - y1) < 0.5 * 600 * 300


def test_the_numpy_fit_is_the_same_model_as_scene_trains(tmp_path: Path) -> None:
    torch_fit = pytest.importorskip("training.scene").fit_logistic
    back = PhotoFeatures(backbone_graph.backbone(onnx.load(str(V4)), _taps()).SerializeToString(), (416, 416), tmp_path)
    x = back.features(interiors()[:12] + outdoors()[:12])
    y = np.array([1] * 12 + [0] * 12, dtype=np.float32)
    weight, bias = fit_logistic(x, y)
    w, b = torch_fit(x, y[:, None], 0.01)
    np.testing.assert_allclose(scores(x, weight, bias), scores(x, w[0], b[0]), atol=1e-3)
    assert len(list(tmp_path.rglob("*.npy"))) == 24, "each photo's features cached once"


def _taps() -> backbone_graph.Taps:
    return backbone_graph.find_taps(onnx.load(str(V4)))


def test_the_threshold_keeps_false_alarms_within_the_cap_and_sits_in_the_gap() -> None:
    score = np.array([0.1, 0.2, 0.3, 0.35, 0.9, 0.8, 0.7, 0.6])
    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    threshold = choose_threshold(score, labels)
    assert 0.35 < threshold < 0.6
    noisy = np.array([0.1, 0.2, 0.3, 0.95, 0.9, 0.8, 0.7, 0.6, 0.15, 0.12])
    noisy_labels = np.array([0, 0, 0, 0, 1, 1, 1, 1, 0, 0])
    chosen = choose_threshold(noisy, noisy_labels, cap=0.0)
    assert chosen > 0.95, "with no false alarm allowed the lone high negative sets the bar"


def test_leftovers_of_killed_learns_go_and_registered_versions_stay(tmp_path: Path) -> None:
    from learning_helpers import registry_with

    from training.learned_version import PARTS, REPORT, remove_leftovers

    root = registry_with(V4, tmp_path / "registry", "v4")
    versions = root / "versions"
    (versions / f"{PARTS}abc").mkdir()  # killed while writing
    (versions / "orphan").mkdir()  # killed between the rename and the registration
    (versions / "orphan" / REPORT).write_text("{}")
    (versions / "v4" / REPORT).write_text("{}")  # a registered version keeps its files, whatever they are
    remove_leftovers(Registry(root))
    assert sorted(p.name for p in versions.iterdir()) == ["v4"]
    assert (versions / "v4" / REPORT).is_file()
