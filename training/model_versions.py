"""`envwatch models list|add|evaluate|promote|rollback|learn|quantize`: the model registry from the command line.

`add` turns a checkpoint into a registered version: ONNX export, thresholds chosen on the val split
of the dataset it was trained on, numbers on its test split, and a generated model card stating
them and the reviewed data used. The dataset is a merged one (`envwatch train --include-reviews`,
training/review_merge.py) or the plain recipe dataset (`envwatch dataset build`), whose card says
that no reviewed image was used. `evaluate` measures any version on any dataset, so versions
compare on the same fixed photos. `list`, `promote` and `rollback` need neither torch nor a dataset:
they run on the serving install, and the service follows a promotion by itself
(inference_api/model_watch.py).

Every number comes from `envwatch evaluate`'s own code (training/evaluate.py): the same pass
through the exported ONNX and our runtime, the same AP definitions, per-image annotation (on a
reviewed photo only the labels someone looked at count) and threshold choice, false-alarm cap
included, so a version's metrics.json has the layout of v1's evaluation JSON.
"""

from __future__ import annotations

import argparse
import getpass
import json
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from model.registry import Registry, RegistryError, Version, check_loadable, check_version_name
from training.review_merge import RECORD

CARD = "MODEL_CARD.md"
METRICS = "metrics.json"


def _registry(args: argparse.Namespace) -> Registry:
    """`--registry`, else the service's own setting (`ENVWATCH_MODEL_REGISTRY`, default model/).

    The same resolution as the service's, so a promotion made with only the variable set changes the registry
    the service watches, not the package's.
    """
    if args.registry is not None:
        return Registry(args.registry)
    from inference_api.settings import Settings

    return Registry(Settings().model_registry)


def _first_missing(folder: Path) -> Path | None:
    """The outermost folder on the way to `folder` that does not exist yet (None: `folder` exists)."""
    missing = None
    for path in (folder, *folder.parents):
        if path.exists():
            return missing
        missing = path
    return missing


@contextmanager
def _removed_on_failure(folder: Path) -> Iterator[None]:
    """Remove the folders this run creates for `folder` if the body fails, so a failed `add` leaves nothing behind.

    A folder that existed before (re-adding a version) is never removed: it holds a registered version's files.
    """
    created = _first_missing(folder)
    try:
        yield
    except BaseException:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise


def _export(checkpoint: Path, onnx: Path, version: str, imgsz: int) -> Path:
    """`export_onnx`, with a checkpoint that does not load reported as such (torch raises many exception types)."""
    from training.export import export_onnx

    try:
        return export_onnx(checkpoint, onnx, version, {}, imgsz)
    except Exception as exc:
        raise RegistryError(f"checkpoint {checkpoint} cannot be exported ({type(exc).__name__}: {exc})") from exc


def measure(
    onnx: Path,
    dataset: Path,
    split: str,
    limit: int | None,
    choose: bool = False,
    exclude: Path | None = None,
    extra_negatives: Path | None = None,
) -> dict:
    """`envwatch evaluate` of the model file `onnx` on `split` of `dataset` (with `choose`, thresholds too).

    `exclude` lists photos to leave out (held-out twins); `extra_negatives` joins the burning cap (docs/probes.md).
    """
    from model.networks import measuring_runtime
    from model.runtime import Detector
    from training.evaluate import evaluate, read_image_list

    left_out = frozenset(read_image_list(exclude)) if exclude else frozenset()
    detector = Detector.load(onnx, runtime=measuring_runtime())
    result, _ = evaluate(
        detector, dataset, split, choose, limit=limit, exclude=left_out, extra_negatives=extra_negatives
    )
    return result


def read_record(dataset: Path) -> dict | None:
    """The merge record of a merged dataset; None for a dataset built by the recipe alone."""
    path = dataset / RECORD
    return json.loads(path.read_text()) if path.is_file() else None


def data_lines(dataset: Path, record: dict | None) -> list[str]:
    """The card's data section: the merge record's account, or a recipe dataset with no reviewed image."""
    if record is None:
        from training.evaluate import split_images

        counts = ", ".join(f"{len(split_images(dataset, s))} {s}" for s in ("train", "val", "test"))
        return [
            f"- Dataset `{dataset.resolve()}`, built by the recipe (`envwatch dataset build`, "
            f"datasets/sources.yaml): {counts} photos (attribution: datasets/CARD.md).",
            "- **Reviewed images used: 0** (trained without a reviews export).",
        ]
    reviewed = record["reviewed_images"]
    return [
        f"- Shared dataset `{record['shared']}`, {record['shared_fraction']:g} of its photos: "
        + ", ".join(f"{n} {s}" for s, n in record["shared_images"].items())
        + " photos (attribution: datasets/CARD.md).",
        f"- **Reviewed images used: {sum(reviewed.values())}** ("
        + ", ".join(f"{n} {s}" for s, n in reviewed.items())
        + f"), from the reviews export `{record['export']}`; reviewed boxes per label: "
        + (", ".join(f"{k} {v}" for k, v in sorted(record["reviewed_boxes"].items())) or "none")
        + f"; hard negatives (dismissed findings): {record['hard_negatives']}.",
        f"- **New classes need at least {record['min_boxes']} reviewed boxes** (`--min-class-boxes`). Added: "
        + (", ".join(f"`{k}` ({v} boxes)" for k, v in record["new_labels"].items()) or "none")
        + ". Waiting for more reviews: "
        + (", ".join(f"`{k}` ({v} boxes)" for k, v in record["waiting_labels"].items()) or "none")
        + ".",
        "- Splits are fixed per source: shared photos keep the recipe's split, reviewed photos the one their sha256 "
        "gives them, so every version is measured on the same photos.",
    ]


def model_card(version: str, names: list[str], data: list[str], metrics: dict, choice: dict, train_args: dict) -> str:
    """The generated card: what was trained on, numbers per label and problem, thresholds and how they were chosen."""
    from training.evaluate import box_table, problem_table, threshold_table

    scopes = [("all", metrics["all"]), *metrics["sources"].items()]
    lines = [
        f"# Model card: envwatch detector {version}",
        "",
        "Generated by `envwatch models add` (training/model_versions.py); do not edit by hand.",
        "",
        f"**Labels ({len(names)}):** " + ", ".join(f"`{n}`" for n in names) + ".",
        "",
        "## Data",
        "",
        *data,
        "",
        "## Training",
        "",
        "Ultralytics `yolov5n.yaml` from the COCO backbone (training/train.py), "
        + ", ".join(f"{k} {train_args[k]}" for k in ("epochs", "imgsz", "batch", "device") if k in train_args)
        + ".",
        "",
        f"## Per-class metrics ({metrics['split']} split, {metrics['images']} photos)",
        "",
        "Each label counted only on photos that annotate it (a shared source's labels; a reviewed photo's looked-at "
        "labels). Measured through the exported ONNX file and the envwatch runtime (`envwatch evaluate`'s code).",
        "",
        *box_table(scopes),
        "",
        f"mAP50 over labels measured: {_number(metrics['all']['map50'])}.",
        "",
        "Image level at the shipped thresholds: recall = flagged photos showing the problem, false alarms = flagged "
        "photos not showing it.",
        "",
        *problem_table(metrics, scopes),
        "",
        "## Shipped thresholds",
        "",
        f"Chosen on the val split: {choice['method']}.",
        "",
        *threshold_table(choice),
        "",
        _tile_note(metrics.get("tile_threshold_choice")),
        "",
        "## Limits",
        "",
        "Candidates for a person to confirm, never a verdict. Numbers on few reviewed photos are noisy: read the box "
        "counts beside every AP. Reviewed photos are split by hash, not by scene, so two photos of one place can sit "
        "on both sides. " + _twin_note(metrics.get("excluded", 0)),
    ]
    return "\n".join(lines) + "\n"


def _tile_note(tiles: dict | None) -> str:
    if not tiles:
        return (
            "No tile thresholds (`--tile-negatives`): a box found in a tile of a drone frame needs only the "
            "thresholds above, so close-ups of leaves or sky may raise problems (docs/probes.md)."
        )
    chosen = ", ".join(f"{label} {t:.2f}" for label, t in tiles["tile_thresholds"].items())
    return (
        f"Tile thresholds, the least score a box found in a tile needs (1.00: never from a tile), chosen on "
        f"{tiles['photos']} problem-free photos in `{tiles['folder']}` (`envwatch probe calibrate-tiles`): {chosen}."
    )


def _twin_note(excluded: int) -> str:
    if excluded:
        return f"{excluded} test photos with a near twin in training were left out (`--exclude-test`)."
    return (
        "No held-out photo was left out for a near twin in training (`--exclude-test`): compare with other "
        "versions' full-split numbers (e.g. model/versions/v2/eval/v2-test.json), not their twin-free ones."
    )


def _number(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _choose_tile_thresholds(onnx: Path, folder: Path) -> dict:
    """Tile thresholds chosen on `folder` over the thresholds just written, then written beside them."""
    from model.networks import measuring_runtime
    from model.runtime import Detector
    from training.export import write_metadata
    from training.probes import calibrate_tiles, chosen_tile_thresholds

    records = list(calibrate_tiles(Detector.load(onnx, runtime=measuring_runtime()), folder).values())
    chosen = chosen_tile_thresholds(records)
    write_metadata(onnx, {"envwatch.tile_thresholds": chosen})
    return {"folder": str(folder), "photos": records[0]["photos"] if records else 0, "tile_thresholds": chosen}


def add(args: argparse.Namespace) -> int:
    """Export, threshold, measure, write the card and register `args.version` (not promoted)."""
    from training.evaluate import dataset_annotation

    check_version_name(args.version)
    registry = _registry(args)
    if not args.checkpoint.is_file():
        raise FileNotFoundError(f"no checkpoint at {args.checkpoint}")
    dataset_annotation(args.dataset)  # a dataset that cannot be measured fails here, before the slow export
    folder = registry.folder_of(args.version)
    with _removed_on_failure(folder):
        card = _add(args, registry, folder)
    print(card)
    print(f"registered {args.version} in {registry.file} (not promoted: `envwatch models promote {args.version}`)")
    return 0


def _add(args: argparse.Namespace, registry: Registry, folder: Path) -> str:
    """`add`'s work once its input is checked: everything it writes goes under `folder`; returns the card."""
    import yaml

    from training.export import write_metadata

    record = read_record(args.dataset)
    folder.mkdir(parents=True, exist_ok=True)
    onnx = _export(args.checkpoint, folder / f"envwatch-{args.version}.onnx", args.version, args.imgsz)
    val = measure(onnx, args.dataset, "val", args.limit, True, args.exclude_val, args.extra_negatives)
    choice = val["threshold_choice"]
    write_metadata(onnx, {"envwatch.thresholds": {k: float(c["threshold"]) for k, c in choice["labels"].items()}})
    tiles = _choose_tile_thresholds(onnx, args.tile_negatives) if args.tile_negatives else None
    metrics = measure(onnx, args.dataset, "test", args.limit, exclude=args.exclude_test)
    metrics["threshold_choice"] = choice
    if tiles is not None:
        metrics["tile_threshold_choice"] = tiles
    names = list(metrics["thresholds"])  # the model's labels: the ONNX metadata gives every one a threshold
    args_file = args.checkpoint.parent.parent / "args.yaml"
    train_args = yaml.safe_load(args_file.read_text()) if args_file.exists() else {}
    (folder / METRICS).write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    card = model_card(args.version, names, data_lines(args.dataset, record), metrics, choice, train_args)
    (folder / CARD).write_text(card)
    summary = {
        "labels": names,
        "new_labels": record["new_labels"] if record else {},
        "reviewed_images": sum(record["reviewed_images"].values()) if record else 0,
        "test_map50": metrics["all"]["map50"],
        "test_set": metrics["image_set"],
    }
    relative = folder.relative_to(registry.root)
    registry.add(
        Version(args.version, str(relative / onnx.name), str(relative / CARD), str(relative / METRICS), summary=summary)
    )
    return card


def evaluate(args: argparse.Namespace) -> int:
    """Measure a registered version on a dataset's split; write it beside the version's files."""
    from training.evaluate import markdown_tables

    registry = _registry(args)
    metrics = measure(registry.path_of(args.version), args.dataset, args.split, args.limit)
    out = registry.folder_of(args.version) / f"eval-{args.dataset.resolve().name}-{args.split}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(metrics, indent=2, ensure_ascii=False) + "\n")
    print(markdown_tables(metrics))
    print(f"{args.version} on {args.split}: mAP50 {_number(metrics['all']['map50'])}; wrote {out}")
    return 0


def list_versions(args: argparse.Namespace) -> int:
    registry = _registry(args)
    width = max([14, *(len(v) + 2 for v in registry.versions)])
    print(f"{'':2}{'version':<{width}}{'added':<27}{'reviewed':>9}{'test mAP50':>12}  {'test set':<14}labels")
    for v in registry.versions.values():
        mark = "* " if v.version == registry.promoted else "  "
        reviewed, map50 = v.summary.get("reviewed_images", "–"), v.summary.get("test_map50")
        labels = ", ".join(v.summary.get("labels", [])) or _learned(v.summary) or "(see its card)"
        test_set = v.summary.get("test_set") or "–"
        print(f"{mark}{v.version:<{width}}{v.added_at:<27}{reviewed!s:>9}{_number(map50):>12}  {test_set:<14}{labels}")
    print(f"(* promoted; registry {registry.file})")
    print("(test mAP50 values compare only between versions with the same test set: the digest of the photos measured)")
    return 0


def _learned(summary: dict) -> str:
    """A learned version's line (training/learn.py): what it adds, on which base."""
    if "learned" not in summary:
        return ""
    return f"{summary.get('base')} + learned from photo labels: {', '.join(summary['learned'])}"


def promote(args: argparse.Namespace) -> int:
    registry = _registry(args)
    previous = registry.promoted
    registry.promote(args.version, getpass.getuser(), check=check_loadable)
    print(f"promoted {args.version} (was {previous}); a running service switches within its poll interval")
    return 0


def rollback(args: argparse.Namespace) -> int:
    registry = _registry(args)
    previous = registry.promoted
    promotion = registry.rollback(getpass.getuser(), check=check_loadable)
    print(f"rolled back from {previous} to {promotion.version}")
    return 0


def learn(args: argparse.Namespace) -> int:
    """Learn new types from the service's photo labels (its database and images, `ENVWATCH_*` settings).

    Torch-free, on the server: the same code as `POST /v1/models/learn` (inference_api/photo_labels.py).
    """
    from inference_api.db import make_engine, make_sessionmaker
    from inference_api.photo_labels import learn_from
    from inference_api.settings import Settings
    from training.learn import LearnBusy

    settings = Settings()
    if args.registry is not None:
        settings = settings.model_copy(update={"model_registry": args.registry})
    engine = make_engine(settings.database_url)
    try:
        report = learn_from(make_sessionmaker(engine), settings, getpass.getuser(), args.version)
    except LearnBusy as exc:
        raise RegistryError(str(exc)) from None
    finally:
        engine.dispose()
    for t in report["types"]:
        print(
            f"{t['type']}: {t['positives']} photos showing it, {t['negatives']} not; threshold {t['threshold']:.3f}; "
            f"CV recall {t['cv_recall']:.3f} ({t['cv_flagged_positives']}/{t['positives']}), "
            f"CV false alarms {t['cv_false_alarms']:.3f} ({t['cv_flagged_negatives']}/{t['negatives']})"
        )
    for t, why in report["skipped"].items():
        print(f"{t}: not learned: {why}")
    print(
        f"registered {report['version']} (base {report['base']}; not promoted: `envwatch models promote "
        f"{report['version']}`)"
    )
    return 0


def quantize(args: argparse.Namespace) -> int:
    """Write a version's INT8 copy beside its file (training/quantize.py), calibrated on the dataset's train photos."""
    from training.calibration import calibration_photos
    from training.quantize import QUANTIZATION_PHOTOS
    from training.quantize import quantize as write_copy

    path = _registry(args).path_of(args.version)
    photos = calibration_photos(args.data / "data.yaml", args.photos or QUANTIZATION_PHOTOS)
    copy = write_copy(path, photos)
    print(
        f"wrote {copy} ({copy.stat().st_size / 1e6:.1f} MB), calibrated on {len(photos)} train photos of {args.data}; "
        "ENVWATCH_RUNTIME=onnxruntime-int8 runs it. Hold it to the float file on val before shipping it: "
        f"ENVWATCH_RUNTIME=onnxruntime-int8 envwatch scene evaluate --model {path} --split val (and envwatch evaluate)"
    )
    return 0


def main(args: argparse.Namespace) -> int:
    handlers = {
        "list": list_versions,
        "add": add,
        "evaluate": evaluate,
        "promote": promote,
        "rollback": rollback,
        "learn": learn,
        "quantize": quantize,
    }
    try:
        return handlers[args.action](args)
    except (RegistryError, OSError, ValueError) as exc:
        print(f"envwatch models {args.action}: {exc}", file=sys.stderr)
        return 2
