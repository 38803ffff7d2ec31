"""What both API fuzz modules share: the three services wired in process on given databases, how one
generated case is exercised and judged, and the per-service totals (tests/integration/test_openapi_fuzz.py
on SQLite, test_openapi_fuzz_postgres.py on PostgreSQL)."""
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

COLLECT_ONLY = os.environ.get("JZ_FUZZ_COLLECT") == "1"
# /metrics and /readyz are operational (readyz needs the broker, which is deliberately unreachable here).
EXCLUDED = "^/(metrics|readyz)"


def fuzz_settings(examples: int):
    return settings(max_examples=examples, deadline=None, derandomize=True,
                    suppress_health_check=list(HealthCheck), database=None)


class ServiceFuzz:
    """The three services on ``urls`` (service -> database URL, given the var directory), their schemas,
    and the counters of what the cases found."""

    def __init__(self, urls) -> None:
        var = Path(tempfile.mkdtemp(prefix="jz-fuzz-"))
        common = {"var_dir": var, "kafka_bootstrap": "127.0.0.1:1", "log_json": False, "log_level": "WARNING",
                  "run_consumer": False}
        database = urls(var)
        benefits = create_benefits(BenefitsSettings(database_url=database["benefits"], **common))
        # The registry's DCI token route asks benefits (its partner clients): wired in process, as over HTTP.
        registry = create_registry(RegistrySettings(database_url=database["registry"], **common),
                                   benefits_transport=httpx.ASGITransport(app=benefits))
        audit = create_audit(AuditSettings(database_url=database["audit"], **common))
        self.headers = {"Authorization": f"Bearer {mint_token(RegistrySettings(**common), 'admin')}"}
        self.schemas = {name: schemathesis.openapi.from_asgi("/openapi.json", app).exclude(path_regex=EXCLUDED)
                        for name, app in (("registry", registry), ("benefits", benefits), ("audit", audit))}
        # service -> counters; printed at the end so the lead can paste them.
        self.totals: dict[str, dict] = defaultdict(lambda: {"operations": set(), "examples": 0, "5xx": 0,
                                                            "schema_violations": 0, "not_problem_json": 0,
                                                            "seconds": 0.0})
        self.first_failures: dict[str, list[str]] = defaultdict(list)

    def exercise(self, service: str, case) -> None:
        started = time.perf_counter()
        totals = self.totals[service]
        totals["operations"].add(case.operation.label)
        totals["examples"] += 1
        failures: list[str] = []
        try:
            response = case.call(headers=self.headers)
        except Exception as error:  # the ASGI transport re-raises an unhandled server error: that is a 500
            totals["5xx"] += 1
            failures.append(f"5xx {case.operation.label} (raised): {type(error).__name__}: {str(error)[:300]}")
            self.first_failures[service].extend(failures[: max(0, 40 - len(self.first_failures[service]))])
            if COLLECT_ONLY:
                return
            raise
        try:
            case.validate_response(response, checks=[not_a_server_error], headers=self.headers)
        except (Exception, FailureGroup) as error:  # FailureGroup is a BaseExceptionGroup
            totals["5xx"] += 1
            failures.append(f"5xx {case.operation.label}: {str(error)[:400]}")
        try:
            case.validate_response(response, checks=[response_schema_conformance], headers=self.headers)
        except (Exception, FailureGroup) as error:
            totals["schema_violations"] += 1
            failures.append(f"schema {case.operation.label}: {str(error)[:400]}")
        # DCI paths (and the DCI token route) answer errors in their standard's shapes: checked by the schema.
        other_format = (case.operation.definition.raw or {}).get("x-error-format")
        if response.status_code >= 400 and not other_format \
                and "application/problem+json" not in str(response.headers.get("content-type")):
            totals["not_problem_json"] += 1
            failures.append(f"not problem+json {case.operation.label} {response.status_code}: {response.text[:200]}")
        totals["seconds"] += time.perf_counter() - started
        if failures:
            if len(self.first_failures[service]) < 40:
                self.first_failures[service].extend(failures)
            if not COLLECT_ONLY:
                pytest.fail("\n".join(failures), pytrace=False)

    def report(self, examples: int) -> None:
        """Prints the per-service totals and fails if anything was found (with JZ_FUZZ_COLLECT=1 too)."""
        lines = [f"schemathesis, {examples} examples per operation:"]
        for service in ("registry", "benefits", "audit"):
            totals = self.totals.get(service)
            if totals is None:
                continue
            lines.append(f"  {service}: operations={len(totals['operations'])} examples={totals['examples']} "
                         f"5xx={totals['5xx']} schema_violations={totals['schema_violations']} "
                         f"not_problem_json={totals['not_problem_json']} seconds={totals['seconds']:.0f}")
            lines.extend(f"    {failure}" for failure in self.first_failures.get(service, [])[:40])
        print("\n".join(lines))
        if self.totals:
            assert sum(t["5xx"] + t["schema_violations"] + t["not_problem_json"] for t in self.totals.values()) == 0, \
                "\n".join(lines)
