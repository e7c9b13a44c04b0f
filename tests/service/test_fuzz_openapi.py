"""Property-based fuzzing of the whole API from its own OpenAPI document (schemathesis).

The schema is loaded over HTTP from the module's running server; schemathesis then generates
requests for every operation (valid ones and deliberately invalid ones), sends them to that
server over real HTTP and checks each response: never a 5xx, only documented status codes and
content types, and bodies that match the declared response schemas. One pass runs as admin, so
every authorised path is reached; a second, cheaper one runs with a read-only key, where writes
must be refused with a documented 403, never a 5xx.

Bounded for CI: `ENVWATCH_FUZZ_EXAMPLES` (default 60) examples per operation, derandomized (the same
requests on every run); set it higher for a deeper local run. The schemathesis checks that only act in its
coverage phase (unsupported_method, missing_required_header) are not used: this file runs the fuzzing phase,
with valid and invalid data. positive_data_acceptance is not used either: it expects every schema-valid
request to succeed, but this API rightly answers some with a documented 422 (random bytes as a photo or
zip, `from` after `to`, folder jobs switched off).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from service_helpers import Server, Upload

EXAMPLES = int(os.environ.get("ENVWATCH_FUZZ_EXAMPLES", "60"))
"""Examples per operation for the admin pass (the read-only pass runs a third of them); raise it for a deeper run."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
    response_headers_conformance,
]
FUZZ_SETTINGS = settings(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


def _load(server: Server) -> schemathesis.BaseSchema:
    config = schemathesis.Config.from_dict(
        {
            "generation": {"deterministic": True, "database": "none", "with-security-parameters": False},
            "phases": {"stateful": {"enabled": False}},
        }
    )
    return schemathesis.openapi.from_url(
        f"{server.url}/openapi.json", config=config, headers={"Authorization": f"Bearer {server.admin_key}"}
    )


@pytest.fixture(scope="module")
def seeded(server: Server, fire_photos: list[Path], upload: Upload) -> Server:
    """One real inspection, so generated ids sometimes hit real images, findings and inspections."""
    with server.admin as client:
        response = upload(client, [(p.name, p.read_bytes()) for p in fire_photos[:2]], conf="0.001")
    assert response.status_code == 201, response.text
    return server


@pytest.fixture(scope="module")
def api_schema(seeded: Server) -> schemathesis.BaseSchema:
    return _load(seeded)


@pytest.fixture(scope="module")
def read_only_key(server: Server) -> str:
    """Created only after the admin pass (which may revoke keys it did not create itself)."""
    return server.new_key("integration", "fuzz-read-only")


def fuzz(schema: schemathesis.BaseSchema, send: Callable[[schemathesis.Case], object], examples: int) -> None:
    """Run `send` on generated cases of every operation, valid and invalid; fail listing every operation that broke.

    A loop over operations rather than schemathesis' pytest plugin (`from_fixture(...).parametrize()`), which
    does not run under pytest 9 (it sets `Function._nodeid`, which pytest 9 no longer has).
    """
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20, [op.label for op in operations]
    for operation in operations:
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
        )

        @settings(FUZZ_SETTINGS, max_examples=examples)
        @given(case=strategy)
        def run(case: schemathesis.Case) -> None:
            send(case)

        try:
            run()
        except (FailureGroup, Exception) as exc:  # one operation's failure must not hide the others'
            failures[operation.label] = f"{type(exc).__name__}: {exc}"
    assert not failures, "\n\n".join(f"{label}\n{text}" for label, text in failures.items())


def test_fuzz_as_admin(api_schema: schemathesis.BaseSchema, server: Server) -> None:
    auth = {"Authorization": f"Bearer {server.admin_key}"}
    fuzz(api_schema, lambda case: case.call_and_validate(headers=auth, checks=CHECKS), examples=EXAMPLES)


def test_fuzz_read_only_and_anonymous(api_schema: schemathesis.BaseSchema, read_only_key: str) -> None:
    auth = {"Authorization": f"Bearer {read_only_key}"}

    def send(case: schemathesis.Case) -> None:
        case.call_and_validate(headers=auth, checks=CHECKS)
        case.call_and_validate(checks=CHECKS)

    fuzz(api_schema, send, examples=max(1, EXAMPLES // 3))
