"""A full disk: uploads answer 507 and store nothing, /readyz says why, and all is well once space is freed.

The image store lives on a real, small tmpfs (mounting one needs root, as in CI's container; the
tests skip elsewhere), filled with a real file, so the service meets a real ENOSPC.
"""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from service_helpers import Server, Upload

MIN_FREE = 64 * 1024


@pytest.fixture(scope="module")
def small_disk(tmp_path_factory: pytest.TempPathFactory, database_url: str) -> Iterator[Path]:
    """A 6 MB tmpfs, one per database backend, unmounted (lazily: the server may still hold it) at the end."""
    mount_point = tmp_path_factory.mktemp("small-disk")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount_point)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture(scope="module")
def server(make_server: Callable[..., Server], small_disk: Path) -> Server:
    return make_server({"ENVWATCH_DATA_DIR": str(small_disk / "images"), "ENVWATCH_MIN_FREE_BYTES": str(MIN_FREE)})


def photo(seed: int, size: tuple[int, int]) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def fill(disk: Path, leave: int) -> Path:
    """Grow a filler file until about `leave` bytes are free on `disk`."""
    filler = disk / "filler"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    current = filler.stat().st_size if filler.exists() else 0
    with filler.open("ab") as handle:
        handle.truncate(0)
        handle.write(b"\0" * max(0, current + free - leave))
    return filler


def stored_files(disk: Path) -> set[str]:
    return {p.name for p in (disk / "images").rglob("*") if p.is_file()}


def total_inspections(client: httpx.Client) -> int:
    return client.get("/v1/inspections").json()["total"]


def test_an_upload_that_runs_out_of_space_is_507_and_leaves_nothing(
    server: Server, small_disk: Path, inspector_key: str, upload: Upload
) -> None:
    """The first file fits, the second does not: 507 `insufficient_storage`, and the first file is gone too."""
    small, large = photo(1, (160, 120)), photo(2, (1000, 750))
    assert len(large) > 300_000 > 10 * len(small)
    with server.client(inspector_key) as client:
        before = total_inspections(client)
        files_before = stored_files(small_disk)
        fill(small_disk, leave=MIN_FREE + 200_000)  # above the minimum: the upload is let in, then meets ENOSPC
        response = upload(client, [("small.jpg", small), ("large.jpg", large)])
        assert response.status_code == 507, response.text
        assert response.json()["error"]["code"] == "insufficient_storage"
        assert stored_files(small_disk) == files_before, "the file that fitted was removed with the rest"
        assert total_inspections(client) == before
    (small_disk / "filler").unlink()


def test_readyz_and_uploads_say_the_disk_is_full_until_space_is_freed(
    server: Server, small_disk: Path, inspector_key: str, upload: Upload
) -> None:
    fill(small_disk, leave=MIN_FREE // 2)
    with server.client(inspector_key) as client:
        ready = httpx.get(server.url + "/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["storage"] is False and body["database"] is True and body["model_loaded"] is True
        assert "free" in body["detail"] and "ENVWATCH_MIN_FREE_BYTES" in body["detail"]
        refused = upload(client, [("a.jpg", photo(3, (160, 120)))])
        assert refused.status_code == 507 and refused.json()["error"]["code"] == "insufficient_storage"
        assert "free" in refused.json()["error"]["message"]
        (small_disk / "filler").unlink()
        ready = httpx.get(server.url + "/readyz")
        assert ready.status_code == 200 and ready.json()["storage"] is True
        assert ready.json()["free_bytes"] > MIN_FREE
        accepted = upload(client, [("a.jpg", photo(3, (160, 120))), ("b.jpg", photo(4, (1000, 750)))])
        assert accepted.status_code == 201, accepted.text
        for result in accepted.json()["files"]:
            assert client.get(f"/v1/images/{result['image']['id']}/original").status_code == 200
