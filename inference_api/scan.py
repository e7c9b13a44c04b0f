"""`envwatch scan PATH...`: find candidate problems in photos on disk, without the service.

Paths may be files, folders (walked recursively for image suffixes) or glob patterns, which we
expand ourselves so quoted patterns and `**` work the same in every shell. Photos are read and
detected one batch at a time (the next batch decoding meanwhile) and every image's result is
written as soon as it is known, so a 10,000-photo folder needs the memory of a few batches and an
interrupted scan keeps what it wrote.

One value, `ScanResult`, carries each image from the detector to the writers (scan_formats.py):
either its `Detections` and the problems raised from them, or the reason it could not be read.
Two thresholds are at play on purpose. `--conf` only changes which *detections* are reported
(for people looking at what the model sees below its shipped operating point); *problems* always
use the thresholds shipped in the model, because those were chosen on held-out data and a problem
list must not depend on a viewing option. So we detect once at the lower of the two and filter.
Greedy NMS never lets a weaker box remove a stronger one, so detecting lower does not change the
boxes kept above the shipped thresholds.

Boxes are in pixels of the image as a person sees it: EXIF orientation is applied before
detection, and `width`/`height` are those of the upright image. Large images are detected in
overlapping tiles (`--tile`, model/tiling.py); tile boxes are merged after thresholding, so the
two-threshold argument above holds for them too. Each problem gets a ground position when the
image carries a georeference (drone EXIF/XMP or GeoTIFF, model/georef.py), else `None`.

`--engine ray` runs the same `scan` on Ray workers (scan_ray.py); with `--out` a manifest
records what is done so that `--resume` skips it (scan_manifest.py). `--out` is checked before
anything is opened for writing, because opening it empties it: a path that may be a photo is
refused (`refuse_unsafe_output` in scan_formats.py, shared with `envwatch compare`). Image paths
are carried and written as `path_text` (model/images.py) makes them, so names that are not UTF-8
reach the UTF-8 outputs.

Output formats and the CSV schema are described in scan_formats.py and docs/scan.md.
Exit codes: 0 when the scan ran to the end (unreadable photos are reported per image, not fatal),
2 for usage errors (no photo matched, bad option, unusable model), 130 when interrupted, 141 when
the reader of stdout goes away (`| head`).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from inference_api.scan_formats import WRITERS, OutputRefused, open_output, refuse_unsafe_output
from inference_api.scan_manifest import Manifest, ManifestError, manifest_path
from model.detections import Detections
from model.georef import Position, Ring, read_georeference
from model.images import IMAGE_SUFFIXES, ImageError, LeastSize, LoadedImage, load_image_file, path_text
from model.problems import Problem
from model.runtime import Detector
from model.tiling import TileMode, decode_size, detect_unmerged, merge_tiles

GLOB_CHARS = frozenset("*?[")


class UsageError(Exception):
    """The command cannot run as given; reported on stderr with exit code 2."""


@dataclass(frozen=True)
class ScanResult:
    """What the scan found in one image, or why it could not look (`error` set, nothing else)."""

    image: str
    model: str
    width: int = 0
    height: int = 0
    sha256: str = ""
    """Of the file's bytes, so an import can tell the photo is still the one scanned."""
    detections: Detections | None = None
    """Boxes reported to the user: above --conf, or above the shipped thresholds without it."""
    problems: list[Problem] = field(default_factory=list)
    """Always from the shipped thresholds, whatever --conf is."""
    positions: list[Position | None] = field(default_factory=list)
    """Where each problem is on the ground (same order as `problems`); None where not known."""
    located_by: str | None = None
    """"camera" (drone photo metadata) or "orthomosaic" (GeoTIFF) when the image is georeferenced."""
    footprint: Ring | None = None
    """The image's outline on the ground, when georeferenced."""
    tiled: bool = False
    gps: dict | None = None
    captured_at: datetime | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _matches(argument: str) -> list[Path]:
    """The photos a glob pattern names: regular files with an image suffix, and photos in the folders it names.

    A match that is no regular file (a named pipe, a socket, a device, a broken link) is skipped as a
    folder walk skips it: opening a named pipe to read it would wait for a writer forever.
    """
    found: list[Path] = []
    for match in sorted(Path(m) for m in glob.glob(argument, recursive=True)):
        if match.is_dir():
            found += _image_files(match)
        elif match.suffix.lower() in IMAGE_SUFFIXES and match.is_file():
            found.append(match)
    return found


def collect_paths(arguments: Iterable[str]) -> list[Path]:
    """The photos named by `arguments`, in argument order, each argument's matches sorted, no repeats.

    A file named outright is always scanned (if it is no photo, the scan says so); files found by
    walking a folder or expanding a glob are kept only when their suffix is an image suffix, so
    sidecar files (labels, XMP, thumbnails databases) in a photo folder are not reported as errors.
    A photo reached by several names (a file named and also in a folder named, a symbolic link, a
    `**` pattern following a link back up the tree) is scanned once, under the first name found:
    repeats would count its problems twice.
    """
    found: dict[Path, Path] = {}  # real path -> the name it was first found under
    for argument in arguments:
        path = Path(argument)
        if path.is_file():
            named = [path]
        elif path.is_dir():
            named = _image_files(path)
        elif GLOB_CHARS & set(argument):
            named = _matches(argument)
        else:
            named = []
        for photo in named:
            found.setdefault(photo.resolve(), photo)
    return list(found.values())


def _batches(paths: Sequence[Path], size: int) -> Iterator[Sequence[Path]]:
    for start in range(0, len(paths), size):
        yield paths[start : start + size]


def _decoded(
    paths: Sequence[Path], size: int, least_size: LeastSize
) -> Iterator[tuple[Sequence[Path], list[LoadedImage | str]]]:
    """Each batch of paths with its decoded photos, the next batch decoding on a thread meanwhile.

    Why: JPEG decoding (Pillow) and the networks (onnxruntime) both release the GIL, so the next
    photos decode while the current ones are detected, instead of the CPU waiting on one and then
    the other. About two batches are held decoded at once (three for a moment, as the next one starts).
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="decode") as pool:
        ahead: tuple[Sequence[Path], Future[list[LoadedImage | str]]] | None = None
        for chunk in _batches(paths, size):
            decoding = pool.submit(_load_all, chunk, least_size)
            if ahead is not None:
                yield ahead[0], ahead[1].result()
            ahead = chunk, decoding
        if ahead is not None:
            yield ahead[0], ahead[1].result()


def _load_all(paths: Sequence[Path], least_size: LeastSize) -> list[LoadedImage | str]:
    return [_load(path, least_size) for path in paths]


def _load(path: Path, least_size: LeastSize) -> LoadedImage | str:
    """The decoded photo (as few pixels as the detector needs, `decode_size`), or the reason it cannot
    be used (without the path, which the result names)."""
    try:
        return load_image_file(path, least_size=least_size)
    except ImageError as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot read file ({exc.strerror or exc})"


def scan(
    paths: Sequence[Path], detector: Detector, conf: float | None = None, batch: int = 8, tile: TileMode = "auto"
) -> Iterator[ScanResult]:
    """Yield one `ScanResult` per path, in order, holding only a few batches of decoded photos at a time."""
    shipped = detector.thresholds
    reported = dict.fromkeys(detector.names, conf) if conf is not None else shipped
    detect_conf = min([conf, *shipped.values()]) if conf is not None else None
    for chunk, loaded in _decoded(paths, batch, decode_size(detector.input_size, tile)):
        photos = [item for item in loaded if isinstance(item, LoadedImage)]
        pixels, aerial = [photo.pixels for photo in photos], [photo.aerial for photo in photos]
        sizes = [(photo.width, photo.height) for photo in photos]
        found = iter(detect_unmerged(detector, pixels, detect_conf, batch, tile, aerial, sizes))
        for path, item in zip(chunk, loaded, strict=True):
            if isinstance(item, str):
                yield ScanResult(path_text(path), detector.version, error=item)
                continue
            detections = next(found)
            problems = detector.problems(merge_tiles(detections.with_min_scores(shipped)))
            georef, georef_warnings = read_georeference(path)
            yield ScanResult(
                image=path_text(path),
                model=detector.version,
                width=item.width,
                height=item.height,
                sha256=item.sha256,
                detections=merge_tiles(detections.with_min_scores(reported)),
                problems=problems,
                positions=[georef.locate(p.box) if georef else None for p in problems],
                located_by=georef.method if georef else None,
                footprint=georef.footprint() if georef else None,
                tiled="cut" in detections.data,
                gps=item.gps,
                captured_at=item.captured_at,
                warnings=item.warnings + georef_warnings,
            )


def _check(args: argparse.Namespace) -> list[Path]:
    if args.conf is not None and not 0 <= args.conf <= 1:
        raise UsageError(f"--conf must be between 0 and 1, not {args.conf}")
    if args.batch < 1:
        raise UsageError(f"--batch must be at least 1, not {args.batch}")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be at least 1, not {args.workers}")
    if args.engine != "ray" and (args.ray_address or args.workers):
        raise UsageError("--ray-address and --workers need --engine ray")
    if args.resume and args.out is None:
        raise UsageError("--resume needs --out: the output file to continue")
    paths = collect_paths(args.paths)
    if not paths:
        raise UsageError(f"no photos matched {' '.join(args.paths)} (suffixes: {', '.join(sorted(IMAGE_SUFFIXES))})")
    if args.out is not None:
        try:
            refuse_unsafe_output(args.out, paths, "one of the photos to scan", [manifest_path(args.out)])
        except OutputRefused as exc:
            raise UsageError(str(exc)) from None
    return paths


def _load_detector(path: Path | None) -> Detector:
    try:
        return Detector.load(path)
    except FileNotFoundError as exc:
        raise UsageError(f"{exc}: pass --model PATH") from None
    except Exception as exc:  # onnxruntime raises its own types for files that are no model
        raise UsageError(f"cannot use model: {exc}") from None


def scan_settings(args: argparse.Namespace, detector: Detector) -> dict:
    """What makes two runs' results comparable; a resumed scan must match the one it continues."""
    model = hashlib.sha256(detector.path.read_bytes()).hexdigest()
    return {"model": model, "conf": args.conf, "tile": args.tile, "format": args.format}


def _open(args: argparse.Namespace, detector: Detector) -> tuple[TextIO, Manifest | None, dict | None]:
    """The output, and when resuming the manifest and the writer state to continue from."""
    if not args.resume:
        return open_output(args.out), None, None
    try:
        manifest, state = Manifest.resume(args.out, scan_settings(args, detector))
    except ManifestError as exc:
        raise UsageError(str(exc)) from None
    return args.out.open("a", encoding="utf-8", newline=""), manifest, state


def _results(args: argparse.Namespace, detector: Detector, paths: list[Path]) -> Iterator[ScanResult]:
    if args.engine == "local":
        return scan(paths, detector, args.conf, args.batch, args.tile)
    try:
        from inference_api.scan_ray import scan_ray
    except ImportError as exc:
        raise UsageError(f"--engine ray needs Ray: pip install 'envwatch[scale]' ({exc})") from None
    return scan_ray(paths, detector.path, args.conf, args.batch, args.tile, args.ray_address, args.workers)


def main(args: argparse.Namespace) -> int:
    try:
        paths = _check(args)
        detector = _load_detector(args.model)
        output, manifest, resume = _open(args, detector)
    except (UsageError, OSError) as exc:
        print(f"envwatch scan: {exc}", file=sys.stderr)
        return 2
    writer = WRITERS[args.format](output, resume)
    if manifest is not None:
        paths = [path for path in paths if path_text(path) not in manifest.done]
        print(f"envwatch scan: resuming {args.out}: {len(manifest.done)} done, {len(paths)} to scan", file=sys.stderr)
    elif args.out is not None:
        output.flush()
        manifest = Manifest.start(args.out, scan_settings(args, detector), output.tell(), writer.state())
    images = problems = errors = 0
    progress = tqdm(total=len(paths), unit="img", file=sys.stderr, disable=not args.progress)
    try:
        for result in _results(args, detector, paths):
            images += 1
            problems += len(result.problems)
            if result.error:
                errors += 1
                progress.write(f"envwatch scan: skipped {path_text(result.image)}: {result.error}", file=sys.stderr)
            writer.write(result)
            if manifest is not None:
                manifest.record(result.image, output.tell(), writer.state())
            progress.update()
    except UsageError as exc:
        print(f"envwatch scan: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"envwatch scan: interrupted after {images} of {len(paths)} images", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout (e.g. `| head`) stopped: finish quietly, like other tools
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    finally:
        writer.close()
        progress.close()
        if manifest is not None:
            manifest.close()
        if output is not sys.stdout:
            output.close()
    runtime = detector.network.runtime if args.engine == "local" else "each Ray worker's runtime"
    print(
        f"envwatch scan: {images} images, {problems} problems, {errors} errors (model {detector.version} on {runtime})",
        file=sys.stderr,
    )
    return 0
