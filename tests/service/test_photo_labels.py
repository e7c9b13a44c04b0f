"""Photo labels, learning a new type from them, and its refusals, through a real server (SQLite and PostgreSQL).

The photos are stand-ins (tests/learning_helpers.py): rooms and offices posted as `illegal_structure`,
outdoor photos as not showing it. The server serves a registry copied outside the repo with the
package's promoted version promoted (`PROMOTED`); learning writes new versions there.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from learning_helpers import STAND_IN, interiors, outdoors, registry_with
from service_helpers import Server, at_once

from model.registry import Registry
from training.photo_heads import MIN_EACH

POSITIVES = 20
NEGATIVES = 20
PROMOTED = Registry().promoted


@pytest.fixture(scope="module")
def server(database_url: str, service_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("photo-labels")
    registry = registry_with(service_model, root / "registry")
    env = {"ENVWATCH_DATA_DIR": str(root / "images"), "ENVWATCH_MODEL_REGISTRY": str(registry)}
    server = Server(root=root, database_url=database_url, env=env, admin_key="ew_test_photo_labels_admin").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def photos(server: Server) -> dict[str, list[int]]:
    """Image ids of uploaded rooms (the first held out from labelling) and outdoor photos."""
    rooms, outside = interiors()[: POSITIVES + 1], outdoors()[: NEGATIVES + 4]
    ids: dict[str, list[int]] = {}
    with server.admin as client:
        for kind, files in (("rooms", rooms), ("outside", outside)):
            sent = client.post(
                "/v1/inspections",
                files=[("files", (p.name, p.read_bytes(), "image/jpeg")) for p in files],
                data={"region": "test-village"},
            )
            assert sent.status_code == 201, sent.text
            ids[kind] = [f["image"]["id"] for f in sent.json()["files"]]
    return ids


def registry_state(server: Server) -> tuple[bytes, list[str]]:
    folder = Path(server.env["ENVWATCH_MODEL_REGISTRY"])
    return (folder / "registry.json").read_bytes(), sorted(p.name for p in (folder / "versions").iterdir())


def label(client: httpx.Client, image_id: int, shows: bool, type_: str = STAND_IN) -> httpx.Response:
    return client.post("/v1/photo-labels", json={"image_id": image_id, "type": type_, "shows": shows})


def test_a_photo_label_records_who_when_and_the_model_shown(server: Server, photos: dict[str, list[int]]) -> None:
    inspector = server.new_key("inspector", "inspector-li")
    with server.client(inspector) as client:
        serving = client.get("/v1/models").json()["serving"]
        made = label(client, photos["rooms"][1], True)
        assert made.status_code == 201, made.text
        body = made.json()
        assert (body["type"], body["shows"], body["created_by"], body["shown_model"]) == (
            STAND_IN,
            True,
            "inspector-li",
            serving,
        )
        listed = client.get("/v1/photo-labels", params={"image_id": photos["rooms"][1]}).json()
        assert [item["id"] for item in listed["items"]] == [body["id"]]
        assert client.delete(f"/v1/photo-labels/{body['id']}").status_code == 204
        assert client.get("/v1/photo-labels", params={"image_id": photos["rooms"][1]}).json()["total"] == 0
        again = client.delete(f"/v1/photo-labels/{body['id']}")
        assert again.status_code == 409 and again.json()["error"]["code"] == "label_deleted"
        unknown = label(client, photos["rooms"][1], True, "flying_saucer")
        assert unknown.status_code == 422, unknown.text
        missing = client.post("/v1/photo-labels", json={"image_id": 999999, "type": STAND_IN, "shows": True})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_too_few_or_contradictory_labels_are_refused_and_write_nothing(
    server: Server, photos: dict[str, list[int]]
) -> None:
    before = registry_state(server)
    with server.admin as client:
        for image_id in photos["rooms"][1 : MIN_EACH - 1]:
            assert label(client, image_id, True).status_code == 201
        for image_id in photos["outside"][: MIN_EACH + 2]:
            assert label(client, image_id, False).status_code == 201
        few = client.post("/v1/models/learn", json={})
        assert few.status_code == 422 and few.json()["error"]["code"] == "too_few_labels", few.text
        assert f"at least {MIN_EACH}" in few.json()["error"]["message"]
        both = label(client, photos["outside"][0], True)
        contradictory = client.post("/v1/models/learn", json={})
        assert contradictory.status_code == 422, contradictory.text
        assert contradictory.json()["error"]["code"] == "contradictory_labels"
        assert f"photo label {both.json()['id']}" in contradictory.json()["error"]["message"]
        assert client.delete(f"/v1/photo-labels/{both.json()['id']}").status_code == 204
        assert client.get("/v1/models").json()["promoted"] == PROMOTED
    assert registry_state(server) == before


def test_uncertain_photos_are_the_unlabelled_ones_nearest_the_boundary(
    server: Server, photos: dict[str, list[int]]
) -> None:
    with server.admin as client:
        listed = client.get("/v1/photo-labels/uncertain", params={"type": STAND_IN, "limit": 50})
        assert listed.status_code == 200, listed.text
        body = listed.json()
        labelled = {
            item["image_id"] for item in client.get("/v1/photo-labels", params={"type": STAND_IN}).json()["items"]
        }
        ids = [item["image_id"] for item in body["items"]]
        assert ids and not set(ids) & labelled
        assert body["considered"] == len(photos["rooms"]) + len(photos["outside"]) - len(labelled)
        distances = [round(abs(item["score"] - 0.5), 6) for item in body["items"]]
        assert distances == sorted(distances)
        none_yet = client.get("/v1/photo-labels/uncertain", params={"type": "clutter_pile"})
        assert none_yet.status_code == 422 and none_yet.json()["error"]["code"] == "too_few_labels"


def test_confirmed_and_dismissed_findings_count_as_photo_labels(server: Server, photos: dict[str, list[int]]) -> None:
    """A confirmed finding says yes for its type and photo; a dismissed one no, unless the photo has a yes."""
    with server.admin as client:
        found: dict[tuple[str, int], list[int]] = {}
        for image_id in photos["outside"]:
            for f in client.get("/v1/findings", params={"image_id": image_id}).json()["items"]:
                found.setdefault((f["type"], image_id), []).append(f["id"])
        twice = next(
            key for key, ids in found.items() if len(ids) >= 2
        )  # street photos: the promoted model flags garbage on them
        other = next(key for key in found if key[0] == twice[0] and key != twice)
        type_ = twice[0]
        for finding_id, to in (
            (found[twice][0], "confirmed"),
            (found[twice][1], "dismissed"),
            (found[other][0], "dismissed"),
        ):
            moved = client.post(f"/v1/findings/{finding_id}/transitions", json={"to": to})
            assert moved.status_code == 200, moved.text  # the second: dismissed on a photo whose yes stands
        counted = client.get("/v1/photo-labels/uncertain", params={"type": type_})
    assert counted.status_code == 422, counted.text
    assert f"{type_}: 1 photo(s) labelled showing it and 1 not" in counted.json()["error"]["message"]


def test_learn_promote_raise_at_an_approximate_place_and_roll_back(
    server: Server, photos: dict[str, list[int]]
) -> None:
    held_out = photos["rooms"][0]
    with server.admin as client:
        have = {
            (i["image_id"], i["shows"]) for i in client.get("/v1/photo-labels", params={"limit": 1000}).json()["items"]
        }
        for image_id in photos["rooms"][1 : POSITIVES + 1]:
            if (image_id, True) not in have:
                assert label(client, image_id, True).status_code == 201
        for image_id in photos["outside"][:NEGATIVES]:
            if (image_id, False) not in have:
                assert label(client, image_id, False).status_code == 201
        learned = client.post("/v1/models/learn", json={"version": "rooms-1"})
        assert learned.status_code == 201, learned.text
        report = learned.json()
        (learned_type,) = report["types"]
        assert report["base"] == PROMOTED and learned_type["type"] == STAND_IN
        assert (learned_type["positives"], learned_type["negatives"]) == (POSITIVES, NEGATIVES)
        assert learned_type["cv_recall"] >= 0.8 and learned_type["cv_false_alarms"] <= 0.1, learned_type
        models = client.get("/v1/models").json()
        assert models["promoted"] == PROMOTED and "rooms-1" in {v["version"] for v in models["versions"]}

        promoted = client.post("/v1/models/promote", json={"version": "rooms-1"})
        assert promoted.status_code == 200 and promoted.json()["serving"] == "rooms-1", promoted.text
        room = interiors()[0]
        raised = upload(client, room)
        (found,) = [f for f in raised["findings"] if f["type"] == STAND_IN]
        image = raised["files"][0]["image"]
        box = found["box"]
        assert found["extent"] == "approx" and found["image_id"] == held_out
        area = (box["x2"] - box["x1"]) * (box["y2"] - box["y1"])
        assert 0 < area < image["width"] * image["height"], box
        confirmed = client.post(f"/v1/findings/{found['id']}/transitions", json={"to": "confirmed"})
        assert confirmed.status_code == 200, confirmed.text  # from now on the held-out room counts as a yes

        rolled = client.post("/v1/models/rollback")
        assert rolled.status_code == 200 and rolled.json()["serving"] == PROMOTED, rolled.text
        assert STAND_IN not in {f["type"] for f in upload(client, room)["findings"]}
        unknown = client.post("/v1/models/promote", json={"version": "no-such"})
        assert unknown.status_code == 404
        twice = client.post("/v1/models/promote", json={"version": PROMOTED})
        assert twice.status_code == 409 and twice.json()["error"]["code"] == "promote_refused", twice.text


def upload(client: httpx.Client, photo: Path) -> dict:
    sent = client.post("/v1/inspections", files=[("files", (photo.name, photo.read_bytes(), "image/jpeg"))])
    assert sent.status_code == 201, sent.text
    return sent.json()


def test_two_learns_at_once_one_is_refused(server: Server) -> None:
    with server.admin as first, server.admin as second:
        answers = at_once(
            lambda: first.post("/v1/models/learn", json={"version": "at-once-a"}),
            lambda: second.post("/v1/models/learn", json={"version": "at-once-b"}),
        )
    codes = sorted(a.status_code for a in answers)
    assert codes == [201, 409], [a.text for a in answers]
    refused = next(a for a in answers if a.status_code == 409)
    assert refused.json()["error"]["code"] == "learn_running"
    registered = Registry(Path(server.env["ENVWATCH_MODEL_REGISTRY"])).versions
    assert len({"at-once-a", "at-once-b"} & set(registered)) == 1


def test_a_learn_killed_midway_leaves_nothing_and_the_next_one_cleans_up(server: Server) -> None:
    folder = Path(server.env["ENVWATCH_MODEL_REGISTRY"])
    before = registry_state(server)
    env = {
        **os.environ,
        "ENVWATCH_DATABASE_URL": server.database_url,
        "ENVWATCH_DATA_DIR": server.env["ENVWATCH_DATA_DIR"],
        "ENVWATCH_MODEL_REGISTRY": str(folder),
    }
    command = [sys.executable, "-m", "inference_api.cli", "models", "learn", "--version", "killed"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not list((folder / "versions").glob(".learn-*")) and time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()[0].decode()
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    leftover = list((folder / "versions").glob(".learn-*"))
    assert leftover, "the learn was not caught writing its version"
    assert registry_state(server)[0] == before[0]
    assert "killed" not in Registry(folder).versions and not (folder / "versions" / "killed").exists()

    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{STAND_IN}: {POSITIVES + 1} photos showing it" in done.stdout, "the confirmed finding counts as a yes"
    assert not list((folder / "versions").glob(".learn-*"))
    assert "killed" in Registry(folder).versions and Registry(folder).promoted == PROMOTED


def test_a_service_pinned_to_one_file_refuses_to_learn_promote_or_roll_back(make_server: Callable[..., Server]) -> None:
    """Its registry is not what it serves (the package's own, by default): changing it from here would be unseen."""
    pinned = make_server()
    before = (Registry().root / "registry.json").read_bytes()
    with pinned.admin as client:
        for path, body in (
            ("/v1/models/learn", {}),
            ("/v1/models/promote", {"version": PROMOTED}),
            ("/v1/models/rollback", None),
        ):
            refused = client.post(path, json=body) if body is not None else client.post(path)
            assert refused.status_code == 409 and refused.json()["error"]["code"] == "model_pinned", refused.text
    assert (Registry().root / "registry.json").read_bytes() == before
