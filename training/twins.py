"""Find near-twins of one image list in another, robustly to shear, black borders and re-encoding.

Why this exists: the dataset recipe removes near-duplicates with a 64-bit dHash, which misses the
Roboflow-augmented copies in garbage-cn's source train split (sheared, with black wedges, one copy
per source photo). If a test image has its twin in train, test scores are inflated. A dHash
compares raw pixels on a fixed grid, so a few degrees of shear move every cell; a pooled CNN
descriptor is nearly invariant to that, and an ORB + RANSAC check then says "same photo" with
geometric evidence rather than a similarity alone.

Two stages, both deterministic:

* `nearest` — global descriptor of every image (COCO YOLOv5n backbone, output of the SPPF layer,
  global average + max pooled, L2-normalised, on the image with its black borders cropped away),
  cosine similarity by one matrix product, best gallery image per query.
* `geometric_match` — ORB features + RANSAC homography between two images; many inliers means
  the same photo (or the same scene from nearly the same viewpoint) even under shear.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

DEFAULT_WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "weights" / "yolov5n-coco-v7.0.pt"
DESCRIPTOR_SIZE = 256
# Calibrated by eye on garbage-cn test vs train+val pairs (side-by-side renders of ~100 pairs):
# - CNN cosine similarity alone is not bimodal: 0.97 is the maximum over all test images, the median
#   best match is 0.84, and between 0.90 and 0.93 about half the pairs were merely similar streets.
#   At or above ~0.92 nearly every pair was the same scene, so similarity only shortlists candidates.
# - ORB + RANSAC separates: >= 25 inliers spread over >= 3 % of the frame were the same photo or
#   the same scene from nearly the same viewpoint in all but ~1 in 20 pairs looked at; 15-24 inliers
#   were right ~6 times in 10 (the misses: catalogue shots of different bins sharing the pictogram);
#   10-14 a coin toss; <= 9 is the noise floor (the bulk sits at 5-9). Pairs with many inliers but
#   coverage below 3 % were mostly catalogue photos sharing a watermark, caption or bin pictogram.
SAME_PHOTO_INLIERS = 25
SAME_PHOTO_COVERAGE = 0.03
BLACK_LEVEL = 24
MAX_BORDER_FRACTION = 0.2


@dataclass(frozen=True)
class Match:
    """The most similar gallery image for one query image."""

    query: Path
    match: Path
    similarity: float
    index: int


def crop_black_border(image: np.ndarray, black_fraction: float = 0.3) -> np.ndarray:
    """Drop edge rows/columns that are mostly near-black (the wedges a shear augmentation adds).

    At most MAX_BORDER_FRACTION of each side is removed, so a genuinely dark (night) photo is not
    cropped to nothing.
    """
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    dark = gray <= BLACK_LEVEL
    h, w = dark.shape
    rows = dark.mean(axis=1) > black_fraction
    cols = dark.mean(axis=0) > black_fraction

    def span(mask: np.ndarray, n: int) -> tuple[int, int]:
        limit = int(n * MAX_BORDER_FRACTION)
        start = 0
        while start < limit and mask[start]:
            start += 1
        end = n
        while n - end < limit and mask[end - 1]:
            end -= 1
        return start, end

    top, bottom = span(rows, h)
    left, right = span(cols, w)
    return image[top:bottom, left:right]


def _letterbox(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
    canvas = np.full((size, size, 3), 114, np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    canvas[top : top + nh, left : left + nw] = resized
    return canvas


def _read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"cannot read image {path}")
    return image


class Describer:
    """COCO-pretrained YOLOv5n backbone (layers 0-9, ending at SPPF) as a global image descriptor.

    The backbone is loaded once; `__call__` is deterministic (eval mode, no augmentation).
    """

    def __init__(self, weights: Path = DEFAULT_WEIGHTS, size: int = DESCRIPTOR_SIZE) -> None:
        from ultralytics.nn.tasks import DetectionModel

        from training.pretrained import transfer_backbone_and_neck

        model = DetectionModel("yolov5n.yaml", nc=5, verbose=False)
        if transfer_backbone_and_neck(model, weights) == 0:
            raise ValueError(f"no tensors from {weights} matched the YOLOv5n backbone")
        self.backbone = torch.nn.Sequential(*model.model[:10]).eval()
        self.size = size

    @torch.inference_mode()
    def __call__(self, paths: Sequence[Path], batch: int = 32) -> np.ndarray:
        """(len(paths), 512) float32 descriptors, each L2-normalised: [mean-pool, max-pool] of SPPF."""
        out = []
        for i in range(0, len(paths), batch):
            images = [_letterbox(crop_black_border(_read(p)), self.size) for p in paths[i : i + batch]]
            x = torch.from_numpy(np.stack(images)[..., ::-1].copy()).permute(0, 3, 1, 2).float() / 255
            features = self.backbone(x)
            pooled = torch.cat([features.mean(dim=(2, 3)), features.amax(dim=(2, 3))], dim=1)
            out.append(torch.nn.functional.normalize(pooled, dim=1).numpy())
        return np.concatenate(out) if out else np.zeros((0, 512), np.float32)


def nearest(
    queries: Sequence[Path],
    gallery: Sequence[Path],
    describer: Describer | None = None,
    top_k: int = 1,
) -> list[list[Match]]:
    """For each query, its `top_k` most similar gallery images by cosine similarity, best first.

    Ties are broken by gallery order (a stable sort), so the result is deterministic.
    """
    if not gallery:
        return [[] for _ in queries]
    describer = describer or Describer()
    q, g = describer(list(queries)), describer(list(gallery))
    return rank(queries, gallery, q, g, top_k)


def rank(
    queries: Sequence[Path], gallery: Sequence[Path], q: np.ndarray, g: np.ndarray, top_k: int = 1
) -> list[list[Match]]:
    """`nearest` on precomputed descriptors (describe a gallery once, compare many query lists)."""
    similarity = q @ g.T
    order = np.argsort(-similarity, axis=1, kind="stable")[:, :top_k]
    return [
        [Match(Path(queries[i]), Path(gallery[j]), float(similarity[i, j]), int(j)) for j in order[i]]
        for i in range(len(queries))
    ]


@dataclass(frozen=True)
class Geometry:
    """Geometric agreement between two images: RANSAC inliers and how much of image A they span."""

    inliers: int
    coverage: float

    def same_photo(self, inliers: int = SAME_PHOTO_INLIERS, coverage: float = SAME_PHOTO_COVERAGE) -> bool:
        """Same photo or same scene from nearly the same viewpoint: enough inliers, spread over the frame.

        The spread test is there because a shared watermark or caption gives many inliers in a strip.
        """
        return self.inliers >= inliers and self.coverage >= coverage


def geometric_match(a: Path, b: Path, features: int = 1000) -> Geometry:
    """ORB matches of two images (borders cropped first) checked by a RANSAC homography.

    A sheared copy of a photo is an affine warp of it, so its matches fit one homography: tens to
    hundreds of inliers spread over the frame. Different photos of similar things give a handful,
    except when they share a watermark or caption, whose inliers sit in a small part of the frame,
    hence `coverage` (convex hull of the inliers in A over A's area). Mirrored copies are tried too,
    since flips are a common augmentation.
    """
    cv2.setRNGSeed(0)  # RANSAC samples from OpenCV's global RNG; fix it so results repeat
    orb = cv2.ORB_create(nfeatures=features)
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)

    def keypoints(image: np.ndarray) -> tuple[tuple, np.ndarray | None]:
        gray = cv2.cvtColor(crop_black_border(image), cv2.COLOR_BGR2GRAY)
        return orb.detectAndCompute(gray, None)

    image_a = crop_black_border(_read(a))
    ka, da = keypoints(image_a)
    area = float(image_a.shape[0] * image_a.shape[1])
    image_b = _read(b)
    best = Geometry(0, 0.0)
    for candidate in (image_b, image_b[:, ::-1].copy()):
        kb, db = keypoints(candidate)
        if da is None or db is None or len(ka) < 8 or len(kb) < 8:
            continue
        pairs = [p for p in matcher.knnMatch(da, db, k=2) if len(p) == 2]
        good = [m for m, n in pairs if m.distance < 0.8 * n.distance]
        if len(good) < 8:
            continue
        src = np.float32([ka[m.queryIdx].pt for m in good])
        dst = np.float32([kb[m.trainIdx].pt for m in good])
        _, mask = cv2.findHomography(src, dst, cv2.RANSAC, 5.0, maxIters=2000, confidence=0.995)
        if mask is None or mask.sum() < 4:
            continue
        kept = src[mask.ravel().astype(bool)]
        found = Geometry(int(mask.sum()), float(cv2.contourArea(cv2.convexHull(kept))) / area)
        if found.inliers > best.inliers:
            best = found
    return best


@dataclass(frozen=True)
class Twin:
    """A query's best gallery candidate after geometric verification."""

    query: Path
    match: Path
    similarity: float
    geometry: Geometry

    @property
    def is_twin(self) -> bool:
        return self.geometry.same_photo()


def find_twins(
    queries: Sequence[Path],
    gallery: Sequence[Path],
    describer: Describer | None = None,
    candidates: int = 3,
    q: np.ndarray | None = None,
    g: np.ndarray | None = None,
) -> list[Twin]:
    """Per query: CNN shortlist of `candidates` gallery images, then ORB + RANSAC on each.

    Returns the candidate with the most inliers (ties: the more CNN-similar one). The CNN alone
    does not separate "same scene" from "similar scene" (its score is not bimodal); the geometry
    does, so `Twin.is_twin` rests on it. Pass precomputed descriptors `q`/`g` to skip describing.
    """
    if not gallery:
        return []
    if q is None or g is None:
        describer = describer or Describer()
        q = describer(list(queries)) if q is None else q
        g = describer(list(gallery)) if g is None else g
    twins = []
    for shortlist in rank(queries, gallery, q, g, top_k=candidates):
        checked = [(geometric_match(m.query, m.match), m) for m in shortlist]
        geometry, best = max(checked, key=lambda c: (c[0].inliers, c[1].similarity))
        twins.append(Twin(best.query, best.match, best.similarity, geometry))
    return twins


def held_out_twins(data: Path, split: str = "test", describer: Describer | None = None) -> list[Twin]:
    """Twins of every `split` image among the same source's images in the splits trained or tuned on.

    For `test` that is train and val; for `val`, train. Sources are compared within themselves:
    a twin across sources would be a copy between public datasets, which the dHash rule covers.
    """
    from training.dataset import SPLIT_RANK
    from training.evaluate import source_of, split_images

    lower = [s for s, rank in SPLIT_RANK.items() if rank > SPLIT_RANK[split]]
    queries = split_images(data, split)
    gallery = [path for s in lower for path in split_images(data, s)]
    describer = describer or Describer()
    q, g = describer(queries), describer(gallery)
    twins: list[Twin] = []
    for source in sorted({source_of(p.stem) for p in queries}):
        qi = [i for i, p in enumerate(queries) if source_of(p.stem) == source]
        gi = [i for i, p in enumerate(gallery) if source_of(p.stem) == source]
        twins += find_twins([queries[i] for i in qi], [gallery[i] for i in gi], q=q[qi], g=g[gi])
    return twins


def write_twins_csv(twins: Sequence[Twin], out: Path) -> int:
    """Write the twins (only those that are) as CSV; returns how many. First column: the held-out image."""
    import csv

    out.parent.mkdir(parents=True, exist_ok=True)
    found = [t for t in twins if t.is_twin]
    with open(out, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["image", "twin", "twin_split", "similarity", "inliers", "coverage"])
        for t in found:
            writer.writerow(
                [
                    t.query.stem,
                    t.match.stem,
                    t.match.parent.name,
                    f"{t.similarity:.4f}",
                    t.geometry.inliers,
                    f"{t.geometry.coverage:.4f}",
                ]
            )
    return len(found)


SHORTLIST_FLOOR = 0.85
"""Below this CNN similarity no verified twin was seen while calibrating (the median best match of a
test photo in train is 0.84), so all-pairs search skips the geometric check there."""


def twin_pairs(
    paths: Sequence[Path],
    describer: Describer | None = None,
    candidates: int = 3,
    floor: float = SHORTLIST_FLOOR,
) -> list[Twin]:
    """Every verified twin pair within `paths` (one source), once each, `query` earlier in `paths` than `match`.

    Each image's `candidates` most similar others (at least `floor`) get the geometric check, in
    both directions' shortlists, so a pair is found when either image ranks the other highly.
    """
    if len(paths) < 2:
        return []
    d = (describer or Describer())(list(paths))
    similarity = d @ d.T
    np.fill_diagonal(similarity, -1.0)
    order = np.argsort(-similarity, axis=1, kind="stable")[:, :candidates]
    checked: set[tuple[int, int]] = set()
    pairs: list[Twin] = []
    for i, row in enumerate(order):
        for j in (int(j) for j in row if similarity[i, j] >= floor):
            key = (min(i, j), max(i, j))
            if key in checked:
                continue
            checked.add(key)
            geometry = geometric_match(paths[key[0]], paths[key[1]])
            if geometry.same_photo():
                pairs.append(Twin(paths[key[0]], paths[key[1]], float(similarity[key]), geometry))
    return sorted(pairs, key=lambda t: (str(t.query), str(t.match)))
