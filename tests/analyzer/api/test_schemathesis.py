"""Property-based tests of the HTTP API against its own ``/openapi.json`` with schemathesis:
every operation, valid and invalid inputs, with and without a token; no 5xx, and every response
conforms to the document (status code, content type, body schema, headers).

Schemathesis calls are blocking (requests), so the app runs on 127.0.0.1:0 in a thread with
its own event loop (``threaded_api``, :class:`support.apiserver.ThreadedApi`), wired as in the
other API tests: a real SQLite store, catalog and fleet. The input edges the document promises
are in ``test_api_bodies``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from support.apiserver import ThreadedApi, auth, dry_run_registration
from support.configs import config_body

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
EXAMPLES = {GenerationMode.POSITIVE: 40, GenerationMode.NEGATIVE: 25}
"""Hypothesis examples per operation and mode (fewer when an operation has fewer inputs)."""
SEEDED_EXAMPLES = 5
SEEDED_ORDER = [
    "GET /api/v1/canaries/{id}",
    "GET /api/v1/canaries/{id}/ticks",
    "GET /api/v1/canaries/{id}/verdict",
    "POST /api/v1/canaries/{id}/pause",
    "POST /api/v1/canaries/{id}/resume",
    "POST /api/v1/canaries/{id}/promote",
]
"""Operations run again on the seeded canaries, in an order that lets most of them succeed
(abort gets a canary of its own: after promote none is left to abort)."""
UNAUTHENTICATED_EXAMPLES = 10
MIN_AUTHENTICATED = 450
MIN_UNAUTHENTICATED = 60
"""Floors on the cases actually run: together at least 500."""


@pytest.fixture(scope="module")
def schema(threaded_api: ThreadedApi) -> schemathesis.BaseSchema:
    """The document as the server serves it."""
    return schemathesis.openapi.from_url(f"{threaded_api.base_url}/openapi.json")


@dataclass(slots=True)
class Tally:
    """Cases run per operation, and the failures found."""

    cases: Counter[str] = field(default_factory=Counter)
    statuses: Counter[tuple[str, int]] = field(default_factory=Counter)
    failures: dict[str, str] = field(default_factory=dict)


def fuzz(
    operation: Any,
    mode: GenerationMode,
    examples: int,
    tally: Tally,
    *,
    call: dict[str, Any],
    **fixed: Any,
) -> None:
    """Run ``examples`` generated cases of one operation (``fixed`` path parameters or body
    given to the strategy); count them; keep the first failure."""
    label = f"{operation.label} [{mode.value}{'' if 'headers' in call else ', no token'}]"

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    def run(case: schemathesis.Case) -> None:
        tally.cases[label] += 1
        response = case.call(**call)
        tally.statuses[(operation.label, response.status_code)] += 1
        case.validate_response(response, checks=CHECKS)

    try:
        run()
    except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 — reported per operation
        tally.failures[label] = str(exc)[:2000]


def operations(schema: schemathesis.BaseSchema) -> list[Any]:
    """Every operation of the document."""
    return [result.ok() for result in schema.get_all_operations()]


def modes(operation: Any) -> list[GenerationMode]:
    """Valid inputs always; invalid ones where there is something to get wrong (a body or a
    query parameter: any string is a valid path parameter)."""
    if len(operation.body) or len(operation.query):
        return [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    return [GenerationMode.POSITIVE]


def explicit_successes(
    every: dict[str, Any], tally: Tally, call: dict[str, Any], http: requests.Session, base: str
) -> None:
    """One valid request each where random inputs hardly ever succeed (a registration, a PUT,
    a config by name, an abort), so their success responses are checked against the document
    too."""
    fresh = http.post(
        f"{base}/api/v1/canaries", json=dry_run_registration(name="abort"), headers=auth()
    )
    assert fresh.status_code == 201, fresh.text
    golden = {"name": "test-golden"}
    explicit: list[tuple[str, dict[str, Any]]] = [
        ("POST /api/v1/canaries/{id}/abort", {"path_parameters": {"id": fresh.json()["id"]}}),
        ("POST /api/v1/canaries", {"body": dry_run_registration(name="explicit")}),
        ("PUT /api/v1/configs/{name}", {"path_parameters": golden, "body": config_body()}),
        ("GET /api/v1/configs/{name}", {"path_parameters": golden}),
    ]
    for label, fixed in explicit:
        fuzz(every[label], GenerationMode.POSITIVE, 1, tally, call=call, **fixed)


class TestSchemathesis:
    """Generated requests against /openapi.json: no 5xx, every response as documented."""

    def test_every_operation_with_a_token(
        self,
        schema: schemathesis.BaseSchema,
        threaded_api: ThreadedApi,
        http: requests.Session,
        canary_ids: list[str],
    ) -> None:
        """Every operation, valid and invalid inputs, the all-scopes token; operations on a
        canary also get the ids of canaries that exist."""
        tally = Tally()
        every = {op.label: op for op in operations(schema)}
        call = {"base_url": threaded_api.base_url, "session": http, "headers": auth()}
        for operation in every.values():
            for mode in modes(operation):
                fuzz(operation, mode, EXAMPLES[mode], tally, call=call)
        for label in SEEDED_ORDER:
            for canary_id in canary_ids:
                fuzz(
                    every[label],
                    GenerationMode.POSITIVE,
                    SEEDED_EXAMPLES,
                    tally,
                    call=call,
                    path_parameters={"id": canary_id},
                )
        explicit_successes(every, tally, call, http, threaded_api.base_url)
        assert tally.failures == {}, "\n\n".join(f"{k}:\n{v}" for k, v in tally.failures.items())
        assert {label.split(" [")[0] for label in tally.cases} == set(every)
        assert tally.cases.total() >= MIN_AUTHENTICATED, tally.cases
        succeeded = {label for label, status in tally.statuses if status < 300}
        assert succeeded == set(every), set(every) - succeeded

    def test_secured_operations_without_a_token(
        self, schema: schemathesis.BaseSchema, threaded_api: ThreadedApi, http: requests.Session
    ) -> None:
        """Every secured operation without a token, the reads among them (tokens are
        configured, reads are not public): 401 as documented, never 5xx."""
        tally = Tally()
        secured = [op for op in operations(schema) if op.definition.raw.get("security")]
        assert len(secured) == 12  # 6 that change something, 6 reads
        for operation in secured:
            for mode in modes(operation):
                call = {"base_url": threaded_api.base_url, "session": http}
                fuzz(operation, mode, UNAUTHENTICATED_EXAMPLES, tally, call=call)
        assert tally.failures == {}, "\n\n".join(f"{k}:\n{v}" for k, v in tally.failures.items())
        assert tally.cases.total() >= MIN_UNAUTHENTICATED, tally.cases
        assert {status for _, status in tally.statuses} == {401}
