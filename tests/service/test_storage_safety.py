"""Stored photos under concurrency and crashes: no row loses its file, no file outlives every row.

Content-addressed files are shared by every request that stores the same photo, so a request
that fails must not delete what another is committing (inference_api/orphans.py); files a killed
server left behind are swept once old enough.
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image
from service_helpers import Server, Upload, at_once

ROUNDS = 20


@pytest.fixture(scope="module")
def server(make_server: Callable[..., Server]) -> Server:
    """Two detector workers, so an upload and a rectification of one photo are scored at the same time."""
    return make_server({"ENVWATCH_DETECT_WORKERS": "2", "ENVWATCH_ORPHAN_GRACE_S": "30"})


def photo(seed: int, size: tuple[int, int] = (320, 240)) -> bytes:
    """A JPEG no other test stores (noise from `seed`): a new file in the image store."""
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def test_a_refused_rectification_never_deletes_the_photo_an_upload_commits(
    server: Server, inspector_key: str, fire_photos: list[Path], upload: Upload
) -> None:
    """Same new photo at once as an upload (201) and as a rectification refused with 409 (the finding is
    still a candidate): the refused request's clean-up must leave the upload's file in place."""
    with server.client(inspector_key) as client:
        seeded = upload(client, [(fire_photos[0].name, fire_photos[0].read_bytes())], conf="0.001")
        candidate = seeded.json()["findings"][0]["id"]
    lost = []
    for round_ in range(ROUNDS):
        data = photo(1000 + round_)
        files = {"file": ("same.jpg", data, "image/jpeg")}
        with server.client(inspector_key) as one, server.client(inspector_key) as other:
            uploaded, refused = at_once(
                partial(upload, one, [("same.jpg", data)]),
                partial(other.post, f"/v1/findings/{candidate}/rectification", files=files),
            )
        answers = {"upload": uploaded, "rectify": refused}
        assert answers["upload"].status_code == 201, answers["upload"].text
        assert answers["rectify"].status_code == 409, answers["rectify"].text
        image_id = answers["upload"].json()["files"][0]["image"]["id"]
        with server.client(inspector_key) as client:
            original = client.get(f"/v1/images/{image_id}/original")
        if original.status_code != 200 or original.content != data:
            lost.append((round_, original.status_code, original.text[:200]))
    assert not lost, f"{len(lost)} of {ROUNDS} committed photos lost their file: {lost[:3]}"


def image_shas(database_url: str) -> set[str]:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return set(connection.execute(sa.text("SELECT sha256 FROM images")).scalars())
    finally:
        engine.dispose()


def stored(data_dir: Path) -> dict[str, Path]:
    return {path.name: path for path in data_dir.glob("*/*/*") if path.is_file()}


def test_files_a_killed_server_left_are_swept_once_old_and_referenced_ones_stay(
    make_server: Callable[..., Server], server: Server, inspector_key: str, upload: Upload
) -> None:
    """What a kill between writing files and committing leaves (a photo with no row, a `.part` of one
    half-written) is removed at the next start once older than the grace period; young ones wait."""
    with server.client(inspector_key) as client:
        kept = upload(client, [("kept.jpg", photo(7))])
    assert kept.status_code == 201
    kept_sha = kept.json()["files"][0]["image"]["sha256"]
    server.stop()
    data_dir = server.data_dir
    old, young = photo(8), photo(9)
    leftovers = {}
    for name, data in (("old", old), ("young", young)):
        sha = hashlib.sha256(data).hexdigest()
        path = data_dir / sha[:2] / sha[2:4] / sha
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        leftovers[name] = path
    part = leftovers["old"].parent / f".{leftovers['old'].name}.x1y2.part"
    part.write_bytes(old[:100])
    an_hour_ago = time.time() - 3600
    for path in (leftovers["old"], part, data_dir / kept_sha[:2] / kept_sha[2:4] / kept_sha):
        os.utime(path, (an_hour_ago, an_hour_ago))
    server.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (leftovers["old"].exists() or part.exists()):
        time.sleep(0.2)
    files = stored(data_dir)
    assert leftovers["old"].name not in files and not part.exists(), "old leftovers swept"
    assert leftovers["young"].name in files, "a young file may be an upload in progress: kept"
    assert kept_sha in files, "a file a row references is never swept, however old"
    with server.client(inspector_key) as client:
        image_id = kept.json()["files"][0]["image"]["id"]
        assert client.get(f"/v1/images/{image_id}/original").status_code == 200
    assert kept_sha in image_shas(server.database_url)
