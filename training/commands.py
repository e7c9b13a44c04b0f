"""Handlers behind `envwatch dataset build|twins|pairs`, `envwatch train` and `envwatch export`."""

from __future__ import annotations

import argparse
import json
import time

from training.cache import cache_dir
from training.dataset import build, write_twin_pairs


def dataset(args: argparse.Namespace) -> int:
    if args.action == "twins":
        from training.twins import held_out_twins, write_twins_csv

        twins = held_out_twins(args.data, args.split)
        count = write_twins_csv(twins, args.out)
        print(f"{count} of {len(twins)} {args.split} images have a twin in training data: {args.out}")
        return 0
    if args.action == "pairs":
        count = write_twin_pairs(args.shared, args.recipe, args.out)
        print(f"{count} twin pairs within the sources: {args.out}")
        return 0
    data_yaml = build(args.shared, args.out, args.recipe, args.card)
    print(f"dataset written: {data_yaml}")
    print((data_yaml.parent / "CARD.md").read_text())
    return 0


def train(args: argparse.Namespace) -> int:
    from training.train import TrainConfig
    from training.train import train as run_training

    if not args.resume and not args.data.exists():
        print(f"no dataset at {args.data}: run `envwatch dataset build` first")
        return 2
    if args.init is not None and not args.init.is_file():
        print(f"no checkpoint at {args.init}: --init takes an earlier run's best.pt or a version's ONNX")
        return 2
    started = time.monotonic()
    project = args.project or cache_dir() / "runs"  # outside the work tree: a long run outlives the checkout
    init = args.init
    if init is not None and init.suffix == ".onnx":  # a version whose .pt was lost: rebuilt from its graph
        from training.calibration import calibration_photos
        from training.recover import write_checkpoint

        try:
            photos = calibration_photos(args.data)
            init = write_checkpoint(args.init, project / args.name / "init.pt", photos)
        except ValueError as exc:
            print(exc)
            return 2
        print(f"rebuilt {args.init.name} as {init} (BatchNorm statistics from {len(photos)} training photos)")
    data, fraction = args.data, args.fraction
    if args.include_reviews is not None:  # docs/reviews.md; --fraction then trims only the shared photos
        from training.review_merge import merge

        merged = project / args.name / "dataset"
        data, fraction = merge(args.data, args.include_reviews, merged, args.min_class_boxes, fraction), 1.0
    config = TrainConfig(
        data=data,
        project=project,
        name=args.name,
        epochs=args.epochs,
        hours=args.hours,
        imgsz=args.imgsz,
        batch=args.batch,
        device=args.device,
        workers=args.workers,
        fraction=fraction,
        cache=args.cache,
        pretrained=args.pretrained,
        resume=args.resume,
        init=init,
    )
    try:
        best = run_training(config)
    except FileNotFoundError as exc:  # --resume with no run to resume
        print(exc)
        return 2
    print(f"best checkpoint: {best} ({(time.monotonic() - started) / 60:.1f} min)")
    return 0


def export(args: argparse.Namespace) -> int:
    from training.export import export_onnx

    thresholds = json.loads(args.thresholds.read_text()) if args.thresholds else {}
    tile_thresholds = json.loads(args.tile_thresholds.read_text()) if args.tile_thresholds else {}
    out = export_onnx(args.checkpoint, args.out, args.version, thresholds, args.imgsz, args.simplify, tile_thresholds)
    print(f"exported {out}")
    return 0
