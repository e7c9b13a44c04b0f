"""`envwatch probe fetch|score`: false alarms on real photos from outside our data.

The held-out splits come from the same three sources as training, so they cannot say how the
model behaves on a sunset, a misty lake or an orange flower, the hard negatives the product meets
in the field. A probe is a list of real photos with no problem in them, pinned by package version
and sha256 in `datasets/probes/*.yaml` and never trained on. `fetch` gets them from Debian's
archive (wallpaper packages hold real photos under free licences) and checks every byte; `score`
counts the photos each problem type is raised on, at the shipped thresholds, resized and tiled.

A probe is split in two halves (`roles`), stratified by trap: `calibrate` photos may join the
hard negatives that cap the burning false alarms when thresholds are chosen (`envwatch evaluate
--choose-thresholds --extra-negatives`), `report` photos are only ever scored. So the number a
model card reports was not what its thresholds were fitted to.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from inference_api.scan import collect_paths, scan
from model.images import load_image_file
from model.networks import measuring_runtime
from model.runtime import Detector
from model.taxonomy import PROBLEM_TYPES, problem_for_label
from model.tiling import FULL_FRAME, TileMode, detect_pieces

ROLES = ("report", "calibrate")
SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
"""A photo's name becomes its file name: no path separators, no leading dot."""


class ProbeError(RuntimeError):
    """The probe cannot be built as pinned: a package or a photo is not the one recorded."""


@dataclass(frozen=True)
class ProbeImage:
    name: str
    package: str
    path: str
    sha256: str
    shows: str
    traps: tuple[str, ...]
    author: str
    licence: str


def read_manifest(manifest: Path) -> tuple[dict[str, dict], list[ProbeImage]]:
    try:
        data = yaml.safe_load(manifest.read_text())
        images = [ProbeImage(**{**entry, "traps": tuple(entry.get("traps") or ())}) for entry in data["images"]]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise ProbeError(f"{manifest} is not a probe manifest: {exc}") from None
    names = [image.name for image in images]
    bad = [n for n in names if not SAFE_NAME.fullmatch(n)] + sorted({n for n in names if names.count(n) > 1})
    if bad:
        raise ProbeError(f"{manifest}: photo names must be unique file names: {', '.join(bad)}")
    unknown = {image.package for image in images} - set(data["packages"])
    if unknown:
        raise ProbeError(f"{manifest}: images from packages it does not pin: {', '.join(sorted(unknown))}")
    return data["packages"], images


def roles(images: Sequence[ProbeImage]) -> dict[str, str]:
    """Per photo, `report` or `calibrate`: alternately within each group of its first trap, by name.

    Deterministic, so every version is calibrated and reported on the same photos; stratified, so
    each half holds sunsets, mist and fire colours alike. A group's first photo (and an odd one
    out) goes to `report`.
    """
    groups: dict[str, list[str]] = {}
    for image in images:
        groups.setdefault(image.traps[0] if image.traps else "plain", []).append(image.name)
    return {name: ROLES[i % 2] for names in groups.values() for i, name in enumerate(sorted(names))}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(package: str, version: str, into: Path) -> Path:
    """`apt-get download` the pinned version into `into`; the .deb's path."""
    if shutil.which("apt-get") is None:
        raise ProbeError(f"apt-get is not here to download {package}; pass --debs with the .deb files")
    done = subprocess.run(
        ["apt-get", "download", f"{package}={version}"], cwd=into, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise ProbeError(f"apt-get download {package}={version} failed: {done.stderr.strip()[-500:]}")
    (deb,) = into.glob(f"{package}_*.deb")
    return deb


def _find_deb(package: str, debs: Path) -> Path:
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        raise ProbeError(f"no {package}_*.deb in {debs}")
    return found[0]


def _extract(deb: Path, wanted: dict[str, ProbeImage], role_of: dict[str, str], out: Path) -> None:
    """Copy the `wanted` members (by path) out of the package's data, checking each one's sha256.

    The archive is read as a stream and only regular files named in the manifest are written, under
    names the manifest chose: no path from the archive ever becomes a path on this disk.
    """
    left = dict(wanted)
    with subprocess.Popen(
        ["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as unpack:
        try:
            with tarfile.open(fileobj=unpack.stdout, mode="r|") as archive:
                for member in archive:
                    image = left.get(member.name.removeprefix("./"))
                    if image is None or not member.isreg():
                        continue
                    content = archive.extractfile(member).read()  # type: ignore[union-attr]
                    if hashlib.sha256(content).hexdigest() != image.sha256:
                        raise ProbeError(f"{image.name}: {image.path} in {deb.name} is not the photo the manifest pins")
                    (out / role_of[image.name] / f"{image.name}{Path(image.path).suffix.lower()}").write_bytes(content)
                    del left[image.path]
        except tarfile.TarError:
            unpack.kill()
            reason = unpack.stderr.read().decode(errors="replace").strip()  # type: ignore[union-attr]
            raise ProbeError(f"{deb.name} is not a Debian package: {reason}") from None
    if left:
        raise ProbeError(f"{deb.name} lacks {', '.join(sorted(left))}")


def fetch(manifest: Path, out: Path, debs: Path | None = None) -> list[Path]:
    """Build the probe's folders of photos (`report/`, `calibrate/`) and an ATTRIBUTION.md; all or nothing."""
    packages, images = read_manifest(manifest)
    role_of = roles(images)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".probe-", dir=out.parent))
    try:
        for role in ROLES:
            (staging / role).mkdir()
        for package, pin in packages.items():
            with tempfile.TemporaryDirectory() as downloads:
                deb = _find_deb(package, debs) if debs else _download(package, str(pin["version"]), Path(downloads))
                if _sha256(deb) != pin["sha256"]:
                    raise ProbeError(f"{deb.name} is not {package} {pin['version']} as pinned (sha256 differs)")
                _extract(deb, {i.path: i for i in images if i.package == package}, role_of, staging)
        (staging / "ATTRIBUTION.md").write_text(attribution(manifest, packages, images, role_of))
        if out.exists():
            shutil.rmtree(out)
        shutil.move(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sorted(p for role in ROLES for p in (out / role).iterdir())


def attribution(
    manifest: Path, packages: dict[str, dict], images: Sequence[ProbeImage], role_of: dict[str, str]
) -> str:
    lines = [f"# Photos of {manifest.name}", "", "Fetched by `envwatch probe fetch` from Debian packages:", ""]
    lines += [f"- {name} {pin['version']}: {pin['licence']}" for name, pin in packages.items()]
    lines += ["", "| photo | half | shows | author | licence | from |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {i.name} | {role_of[i.name]} | {i.shows} | {i.author} | {i.licence} | {i.package}: /{i.path} |"
        for i in images
    ]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class ProbeScore:
    images: int
    flagged: dict[str, list[str]]
    """Per problem type, the photos it was raised on (each one a false alarm)."""
    errors: list[str]


def score(detector: Detector, folder: Path, tile: TileMode = "off") -> ProbeScore:
    """Which photos under `folder` raise which problem types at the shipped thresholds."""
    flagged: dict[str, list[str]] = {p.key: [] for p in PROBLEM_TYPES if p.detectable}
    errors, count = [], 0
    for result in scan(collect_paths([str(folder)]), detector, tile=tile):
        count += 1
        if result.error:
            errors.append(f"{result.image}: {result.error}")
            continue
        for kind in sorted({p.type for p in result.problems}):
            flagged.setdefault(kind, []).append(Path(result.image).stem)
    return ProbeScore(count, flagged, errors)


NEVER = 1.0
"""A tile threshold no box reaches: that label is taken from the whole-frame pass only."""


def calibrate_tiles(detector: Detector, folder: Path, cap: float = 0.1) -> dict[str, dict]:
    """Per problem type the model raises, tile thresholds that keep the tiled photos of `folder` it flags within `cap`.

    Every photo is tiled once (`detect_pieces` with no tile thresholds) and each label's best tile
    score kept. Then per problem, over the grid of each of its labels' shipped threshold up to
    0.90, plus `NEVER`, the least strict combination (lowest sum, then lowest in label order)
    flagging at most `cap` of the photos wins. The photos are the probe's calibrate half:
    problem-free, so any flag is a false alarm.
    """
    from training.evaluate import THRESHOLD_CANDIDATES

    photos = collect_paths([str(folder)])
    if not photos:
        raise ProbeError(f"nothing to calibrate: no photos in {folder}")
    best = np.zeros((len(detector.names), len(photos)))  # (label, photo): the label's best tile score
    for column, photo in enumerate(photos):
        pieces = detect_pieces(detector, load_image_file(photo).pixels, conf=0.01, tile_thresholds={})
        in_tile = pieces.data["tile"] != FULL_FRAME
        for row in range(len(detector.names)):
            best[row, column] = pieces.scores[in_tile & (pieces.class_ids == row)].max(initial=0.0)
    records = {}
    for problem in (p.key for p in PROBLEM_TYPES):
        rows = [row for row, label in enumerate(detector.names) if problem_for_label(label) == problem]
        if not rows:
            continue
        labels, scores = [detector.names[row] for row in rows], best[rows]
        shipped = np.array([detector.thresholds[label] for label in labels])
        grids = [np.append(THRESHOLD_CANDIDATES[floor <= THRESHOLD_CANDIDATES], NEVER) for floor in shipped]
        combos = np.stack(np.meshgrid(*grids, indexing="ij"), axis=-1).reshape(-1, len(labels))
        flagged = (scores[None, :, :] >= combos[:, :, None]).any(axis=1).sum(axis=1)
        within = np.flatnonzero(flagged <= cap * len(photos))
        chosen = within[np.lexsort((*combos[within].T[::-1], combos[within].sum(axis=1)))[0]]
        records[problem] = {
            "tile_thresholds": {label: round(float(t), 2) for label, t in zip(labels, combos[chosen], strict=True)},
            "problem": problem,
            "cap": cap,
            "photos": len(photos),
            "flagged": int(flagged[chosen]),
            "flagged_without": int((scores >= shipped[:, None]).any(axis=0).sum()),
            "best_tile_scores": {
                photo.stem: {label: round(float(scores[i, col]), 3) for i, label in enumerate(labels)}
                for col, photo in enumerate(photos)
            },
        }
    return records


def chosen_tile_thresholds(records: list[dict]) -> dict[str, float]:
    """The per-label tile thresholds of `calibrate_tiles`' records, as `envwatch.tile_thresholds` holds them."""
    return {label: t for record in records for label, t in record["tile_thresholds"].items()}


def report(scores: dict[str, ProbeScore]) -> str:
    """A Markdown table: per problem type and tiling mode, photos flagged out of photos scored."""
    modes = list(scores)
    kinds = list(next(iter(scores.values())).flagged)
    lines = ["| problem type | " + " | ".join(f"flagged, tile={m}" for m in modes) + " |"]
    lines.append("|---|" + "---|" * len(modes))
    for kind in kinds:
        cells = [f"{len(s.flagged[kind])}/{s.images - len(s.errors)}" for s in scores.values()]
        lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    any_flag = [len({n for names in s.flagged.values() for n in names}) for s in scores.values()]
    lines.append(
        "| any | "
        + " | ".join(f"{n}/{s.images - len(s.errors)}" for n, s in zip(any_flag, scores.values(), strict=True))
        + " |"
    )
    return "\n".join(lines) + "\n"


def main(args) -> int:
    """`envwatch probe fetch|score` (see `inference_api/cli.py` for the arguments)."""
    import json

    if args.action == "fetch":
        try:
            photos = fetch(args.manifest, args.out, args.debs)
        except ProbeError as exc:
            print(f"envwatch probe fetch: {exc}")
            return 2
        print(f"{len(photos)} photos in {args.out} (credits: {args.out / 'ATTRIBUTION.md'})")
        return 0
    from model.registry import promoted_model

    if args.action == "calibrate-tiles":
        detector = Detector.load(args.model or promoted_model(), runtime=measuring_runtime())
        try:
            records = list(calibrate_tiles(detector, args.images).values())
        except ProbeError as exc:
            print(f"envwatch probe calibrate-tiles: {exc}")
            return 2
        chosen = chosen_tile_thresholds(records)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(chosen, indent=2) + "\n")
        args.out.with_suffix(".record.json").write_text(json.dumps(records, indent=2) + "\n")
        for record in records:
            print(
                f"{record['problem']}: tiles of {record['photos']} photos flag it on {record['flagged_without']} at "
                f"the shipped thresholds, on {record['flagged']} with {record['tile_thresholds']}"
            )
        print(f"wrote {args.out} (ship with `envwatch export ... --tile-thresholds {args.out}`)")
        return 0
    if not args.images.is_dir():
        print(f"envwatch probe score: no photos at {args.images}: run `envwatch probe fetch` first")
        return 2
    detector = Detector.load(args.model or promoted_model(), runtime=measuring_runtime())
    scores = {mode: score(detector, args.images, mode) for mode in args.tile}
    print(f"model {detector.version}, {args.images}:\n")
    print(report(scores))
    if args.out:
        record = {
            "model": str(detector.version),
            "images": str(args.images),
            **{
                f"tile={mode}": {"images": s.images, "flagged": s.flagged, "errors": s.errors}
                for mode, s in scores.items()
            },
        }
        args.out.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    return 0
