"""Schema-driven fuzzing (schemathesis) of all three services.

Whatever a caller sends: never a 5xx, every error is problem+json, and every answer matches the response
schema the service publishes (schemathesis' `response_schema_conformance`). At least 200 examples per
operation (`JZ_FUZZ_EXAMPLES` raises it; lowering it below 200 is for a quick local look only).

Per-service totals (operations, examples, 5xx, schema violations) are printed by the last test of this file.
With `JZ_FUZZ_COLLECT=1` failures are counted instead of failing the test at the first one, so the totals
show how many there are (the issue's "today 745 violations").
"""
from __future__ import annotations

import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance
from schemathesis.core.failures import FailureGroup

from services.audit.app import create_app as create_audit
from services.benefits.app import create_app as create_benefits
from services.registry.app import create_app as create_registry
from shared.auth import mint_token
from shared.config import AuditSettings, BenefitsSettings, RegistrySettings

EXAMPLES_PER_OPERATION = int(os.environ.get("JZ_FUZZ_EXAMPLES", "200"))
COLLECT_ONLY = os.environ.get("JZ_FUZZ_COLLECT") == "1"

_VAR = Path(tempfile.mkdtemp(prefix="jz-fuzz-"))
_COMMON = {"var_dir": _VAR, "kafka_bootstrap": "127.0.0.1:1", "log_json": False, "log_level": "WARNING",
           "run_consumer": False}
_BENEFITS = create_benefits(BenefitsSettings(database_url=f"sqlite+aiosqlite:///{_VAR}/benefits.db", **_COMMON))
# The registry's DCI token route asks benefits (its partner clients): wired in process, as in production over HTTP.
_REGISTRY = create_registry(RegistrySettings(database_url=f"sqlite+aiosqlite:///{_VAR}/registry.db", **_COMMON),
                            benefits_transport=httpx.ASGITransport(app=_BENEFITS))
_AUDIT = create_audit(AuditSettings(database_url=f"sqlite+aiosqlite:///{_VAR}/audit.db", **_COMMON))
_TOKEN = mint_token(RegistrySettings(**_COMMON), "admin")
_HEADERS = {"Authorization": f"Bearer {_TOKEN}"}

registry_schema = schemathesis.openapi.from_asgi("/openapi.json", _REGISTRY)
benefits_schema = schemathesis.openapi.from_asgi("/openapi.json", _BENEFITS)
audit_schema = schemathesis.openapi.from_asgi("/openapi.json", _AUDIT)
# /metrics and /readyz are operational (readyz needs the broker, which is deliberately unreachable here).
_EXCLUDED = "^/(metrics|readyz)"
_FUZZ = settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True,
                 suppress_health_check=list(HealthCheck), database=None)

# service -> counters; printed at the end so the lead can paste them.
TOTALS: dict[str, dict] = defaultdict(lambda: {"operations": set(), "examples": 0, "5xx": 0,
                                               "schema_violations": 0, "not_problem_json": 0, "seconds": 0.0})
FIRST_FAILURES: dict[str, list[str]] = defaultdict(list)


def _exercise(service: str, case) -> None:
    started = time.perf_counter()
    totals = TOTALS[service]
    totals["operations"].add(case.operation.label)
    totals["examples"] += 1
    failures: list[str] = []
    try:
        response = case.call(headers=_HEADERS)
    except Exception as error:  # the ASGI transport re-raises an unhandled server error: that is a 500
        totals["5xx"] += 1
        failures.append(f"5xx {case.operation.label} (raised): {type(error).__name__}: {str(error)[:300]}")
        FIRST_FAILURES[service].extend(failures[: max(0, 40 - len(FIRST_FAILURES[service]))])
        if COLLECT_ONLY:
            return
        raise
    try:
        case.validate_response(response, checks=[not_a_server_error], headers=_HEADERS)
    except (Exception, FailureGroup) as error:  # FailureGroup is a BaseExceptionGroup
        totals["5xx"] += 1
        failures.append(f"5xx {case.operation.label}: {str(error)[:400]}")
    try:
        case.validate_response(response, checks=[response_schema_conformance], headers=_HEADERS)
    except (Exception, FailureGroup) as error:
        totals["schema_violations"] += 1
        failures.append(f"schema {case.operation.label}: {str(error)[:400]}")
    # DCI paths (and the DCI token route) answer errors in their standard's shapes: checked by the schema above.
    other_format = (case.operation.definition.raw or {}).get("x-error-format")
    if response.status_code >= 400 and not other_format \
            and "application/problem+json" not in str(response.headers.get("content-type")):
        totals["not_problem_json"] += 1
        failures.append(f"not problem+json {case.operation.label} {response.status_code}: {response.text[:200]}")
    totals["seconds"] += time.perf_counter() - started
    if failures:
        if len(FIRST_FAILURES[service]) < 40:
            FIRST_FAILURES[service].extend(failures)
        if not COLLECT_ONLY:
            pytest.fail("\n".join(failures), pytrace=False)


@registry_schema.exclude(path_regex=_EXCLUDED).parametrize()
@_FUZZ
def test_registry_answers_any_input_without_a_server_error_and_within_its_schema(case):
    _exercise("registry", case)


@benefits_schema.exclude(path_regex=_EXCLUDED).parametrize()
@_FUZZ
def test_benefits_answers_any_input_without_a_server_error_and_within_its_schema(case):
    _exercise("benefits", case)


@audit_schema.exclude(path_regex=_EXCLUDED).parametrize()
@_FUZZ
def test_audit_answers_any_input_without_a_server_error_and_within_its_schema(case):
    _exercise("audit", case)


def test_zz_fuzz_totals_per_service():
    """Prints the per-service totals (run with -s, or read them in the captured output of a failure)."""
    lines = [f"schemathesis, {EXAMPLES_PER_OPERATION} examples per operation:"]
    for service in ("registry", "benefits", "audit"):
        totals = TOTALS.get(service)
        if totals is None:
            continue
        lines.append(f"  {service}: operations={len(totals['operations'])} examples={totals['examples']} "
                     f"5xx={totals['5xx']} schema_violations={totals['schema_violations']} "
                     f"not_problem_json={totals['not_problem_json']} seconds={totals['seconds']:.0f}")
        lines.extend(f"    {failure}" for failure in FIRST_FAILURES.get(service, [])[:40])
    print("\n".join(lines))
    if TOTALS:
        assert sum(t["5xx"] + t["schema_violations"] + t["not_problem_json"] for t in TOTALS.values()) == 0, \
            "\n".join(lines)
