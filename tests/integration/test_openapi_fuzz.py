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

from tests.integration.fuzz_support import ServiceFuzz, fuzz_settings

EXAMPLES_PER_OPERATION = int(os.environ.get("JZ_FUZZ_EXAMPLES", "200"))
FUZZ = ServiceFuzz(lambda var: {name: f"sqlite+aiosqlite:///{var}/{name}.db" for name in ("registry", "benefits",
                                                                                          "audit")})
_EXAMPLES = fuzz_settings(EXAMPLES_PER_OPERATION)


@FUZZ.schemas["registry"].parametrize()
@_EXAMPLES
def test_registry_answers_any_input_without_a_server_error_and_within_its_schema(case):
    FUZZ.exercise("registry", case)


@FUZZ.schemas["benefits"].parametrize()
@_EXAMPLES
def test_benefits_answers_any_input_without_a_server_error_and_within_its_schema(case):
    FUZZ.exercise("benefits", case)


@FUZZ.schemas["audit"].parametrize()
@_EXAMPLES
def test_audit_answers_any_input_without_a_server_error_and_within_its_schema(case):
    FUZZ.exercise("audit", case)


def test_zz_fuzz_totals_per_service():
    """Prints the per-service totals (run with -s, or read them in the captured output of a failure)."""
    FUZZ.report(EXAMPLES_PER_OPERATION)
