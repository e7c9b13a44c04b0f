"""Operations: health and readiness, Prometheus metrics, JSON logs, migrations, and the OpenAPI contract."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families
from service_helpers import Server, Upload

from model.runtime import Detector

ERROR_CODES = {"401", "403"}


def metric_samples(server: Server) -> dict[tuple[str, tuple], float]:
    text = httpx.get(server.url + "/metrics").text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_health_and_readiness(server: Server) -> None:
    health = httpx.get(server.url + "/healthz")
    ready = httpx.get(server.url + "/readyz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert ready.status_code == 200
    assert ready.json()["model_loaded"] is True and ready.json()["database"] is True
    served = Detector.load(Path(server.env["ENVWATCH_MODEL_PATH"]))
    assert ready.json()["model_version"] == served.version


def test_without_a_model_the_process_lives_but_is_not_ready(
    make_server: Callable[..., Server], fire_photos: list[Path], upload: Upload, tmp_path: Path
) -> None:
    missing = make_server({"ENVWATCH_MODEL_PATH": str(tmp_path / "nope.onnx")}, expect_ready=False)
    assert httpx.get(missing.url + "/healthz").status_code == 200
    ready = httpx.get(missing.url + "/readyz")
    assert ready.status_code == 503
    assert ready.json()["model_loaded"] is False and "nope.onnx" in ready.json()["detail"]
    with missing.admin as client:
        response = upload(client, [(fire_photos[0].name, fire_photos[0].read_bytes())])
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "model_not_ready"
    assert int(response.headers["Retry-After"]) > 0
    missing.stop()


def test_metrics_count_requests_findings_and_expose_the_queue(
    server: Server, inspector_key: str, fire_photos: list[Path], upload: Upload
) -> None:
    before = metric_samples(server)
    with server.client(inspector_key) as client:
        body = upload(client, [(p.name, p.read_bytes()) for p in fire_photos[:2]], conf="0.001").json()
    after = metric_samples(server)
    route = (("method", "POST"), ("route", "/v1/inspections"), ("status", "201"))
    assert after[("envwatch_http_requests_total", route)] == before.get(("envwatch_http_requests_total", route), 0) + 1
    latency = ("envwatch_http_request_duration_seconds_count", (("method", "POST"), ("route", "/v1/inspections")))
    assert after[latency] == before.get(latency, 0) + 1
    by_type: dict[str, int] = {}
    for finding in body["findings"]:
        by_type[finding["type"]] = by_type.get(finding["type"], 0) + 1
    assert by_type
    for type_, count in by_type.items():
        key = ("envwatch_findings_total", (("type", type_),))
        assert after[key] - before.get(key, 0) == count
    assert after[("envwatch_detection_queue_depth", ())] == 0
    assert after[("envwatch_detection_running", ())] == 0


def test_logs_are_json_lines(server: Server, integration_key: str) -> None:
    with server.client(integration_key) as client:
        started = time.perf_counter()
        client.get("/v1/findings", params={"region": "log-probe"})
        elapsed_ms = (time.perf_counter() - started) * 1000
    records = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    assert {"ts", "level", "logger", "message"} <= set(records[0])
    assert any(r["logger"] == "uvicorn.error" and "startup complete" in r["message"] for r in records)
    assert any(r["message"] == "database migrated" for r in records)
    assert any(r["message"] == "model loaded" and r["model_version"] for r in records)
    probe = [r for r in records if r.get("route") == "/v1/findings" and r.get("status") == 200]
    assert probe and 0 < probe[-1]["duration_ms"] <= elapsed_ms  # the server's part of what the client waited


def test_migrations_ran_to_head(server: Server, database_url: str) -> None:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
            tables = set(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()
    heads = sorted(
        p.name.split("_")[0]
        for p in (Path(__file__).parents[2] / "inference_api" / "migrations" / "versions").glob("[0-9]*.py")
    )
    assert version == heads[-1]
    assert {"api_keys", "images", "inspections", "inspection_files", "findings", "finding_events"} <= tables


@pytest.fixture(scope="module")
def openapi(server: Server) -> dict:
    response = httpx.get(server.url + "/openapi.json")
    assert response.status_code == 200
    return response.json()


def test_openapi_declares_every_error_with_the_error_schema(openapi: dict) -> None:
    assert openapi["components"]["schemas"]["ErrorResponse"]["properties"]["error"]
    detail = openapi["components"]["schemas"]["ErrorDetail"]
    assert {"code", "message", "file"} <= set(detail["properties"]) and set(detail["required"]) == {"code", "message"}
    operations = [(path, method, op) for path, ops in openapi["paths"].items() for method, op in ops.items()]
    assert len([o for o in operations if o[0].startswith("/v1/")]) >= 15
    for path, method, op in operations:
        if not path.startswith("/v1/"):
            continue
        responses = op["responses"]
        assert set(responses) >= ERROR_CODES, f"{method} {path} lacks 401/403"
        for code, response in responses.items():
            if code.startswith(("4", "5")):
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (method, path, code)
        has_parameters = op.get("parameters") or op.get("requestBody")
        if has_parameters:
            assert "422" in responses, (method, path)
    upload = openapi["paths"]["/v1/inspections"]["post"]["responses"]
    assert {"201", "413", "422", "503"} <= set(upload)
    assert "409" in openapi["paths"]["/v1/findings/{finding_id}/transitions"]["post"]["responses"]
    assert "404" in openapi["paths"]["/v1/findings/{finding_id}"]["get"]["responses"]


def test_unknown_routes_use_the_error_schema(server: Server) -> None:
    response = httpx.get(server.url + "/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/v1/findings/1/transitions", "application/json", b'{"to": "\xff"}'),
        ("/v1/keys", "application/json", b'{"name": "\xfe\xff", "role": "admin"}'),
        ("/v1/inspections", "multipart/form-data", b"no boundary, no parts"),
        (
            "/v1/jobs/zip",
            "multipart/form-data; boundary=xyz",
            b"--xyz\r\nContent-Disposition: form-data\r\n\r\nx\r\n--xyz--\r\n",
        ),
    ],
)
def test_unparseable_bodies_are_422_invalid_request(server: Server, path: str, content_type: str, body: bytes) -> None:
    """Regression (found by the schemathesis fuzz): JSON that is not UTF-8 and broken multipart forms were
    400 `http_400`, a status no operation declares; they are invalid requests like any other."""
    with server.admin as client:
        response = client.post(path, content=body, headers={"Content-Type": content_type})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize("value", [2**31, 2**63, 2**64, -(2**64)])
@pytest.mark.parametrize(
    ("method", "template"),
    [
        ("GET", "/v1/findings/{}"),
        ("POST", "/v1/findings/{}/transitions"),
        ("GET", "/v1/images/{}"),
        ("GET", "/v1/images/{}/original"),
        ("GET", "/v1/inspections/{}"),
        ("GET", "/v1/jobs/{}"),
        ("POST", "/v1/jobs/{}/cancel"),
        ("DELETE", "/v1/keys/{}"),
        ("GET", "/v1/findings?offset={}"),
        ("GET", "/v1/findings/summary?inspection_id={}"),
        ("GET", "/v1/inspections?offset={}"),
        ("GET", "/v1/jobs?offset={}"),
    ],
)
def test_ids_and_offsets_out_of_the_databases_range_are_422(
    server: Server, method: str, template: str, value: int
) -> None:
    """Regression (found by the schemathesis fuzz): ids and offsets past what the database takes (PostgreSQL
    INTEGER ids: 2**31; SQLite: 2**63) reached the driver and were a 500."""
    with server.admin as client:
        response = client.request(
            method, template.format(value), json={"to": "confirmed"} if method == "POST" else None
        )
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "invalid_request"


def test_largest_id_is_an_ordinary_404(server: Server) -> None:
    with server.admin as client:
        assert client.get(f"/v1/findings/{2**31 - 1}").status_code == 404
        assert client.get("/v1/inspections", params={"offset": 2**31 - 1}).json()["items"] == []


def test_openapi_declares_what_the_routes_really_accept_and_return(openapi: dict) -> None:
    """Regressions (found by the schemathesis fuzz): the original photo is served as image/jpeg or image/png,
    an upload needs at least one file, and ids are bounded."""
    original = openapi["paths"]["/v1/images/{image_id}/original"]["get"]["responses"]["200"]["content"]
    assert {"image/jpeg", "image/png", "application/octet-stream"} <= set(original)
    body = openapi["paths"]["/v1/inspections"]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]
    ref = body["$ref"].rsplit("/", 1)[-1]
    assert openapi["components"]["schemas"][ref]["properties"]["files"]["minItems"] == 1
    (finding_id,) = openapi["paths"]["/v1/findings/{finding_id}"]["get"]["parameters"]
    assert finding_id["schema"]["minimum"] == 1 and finding_id["schema"]["maximum"] == 2**31 - 1
