"""The API fuzz of all three services again, on PostgreSQL (50 examples per operation by default,
``JZ_FUZZ_PG_EXAMPLES``): what SQLite lets through, PostgreSQL refuses with an error that was a 500 — a NUL
character in a query filter, an amount wider than its NUMERIC(14, 2) column (both found this way). Runs when
``JZ_TEST_POSTGRES_URL`` is set (CI sets it); fresh databases, dropped at exit."""
from __future__ import annotations

import asyncio
import atexit
import os
import uuid

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import POSTGRES_URL, _admin_execute
from tests.integration.fuzz_support import ServiceFuzz, fuzz_settings

if not POSTGRES_URL:
    pytest.skip("set JZ_TEST_POSTGRES_URL to fuzz on PostgreSQL", allow_module_level=True)

EXAMPLES_PER_OPERATION = int(os.environ.get("JZ_FUZZ_PG_EXAMPLES", "50"))
_NAMES = {service: f"jz_fuzz_{service}_{uuid.uuid4().hex[:10]}" for service in ("registry", "benefits", "audit")}


async def _create() -> None:
    for name in _NAMES.values():
        await _admin_execute(f'CREATE DATABASE "{name}"')


def _drop() -> None:
    async def drop() -> None:
        for name in _NAMES.values():
            await _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    asyncio.run(drop())


asyncio.run(_create())
atexit.register(_drop)
FUZZ = ServiceFuzz(lambda _var: {service: make_url(POSTGRES_URL).set(database=name).render_as_string(
    hide_password=False) for service, name in _NAMES.items()})
_EXAMPLES = fuzz_settings(EXAMPLES_PER_OPERATION)


@FUZZ.schemas["registry"].parametrize()
@_EXAMPLES
def test_registry_on_postgres_answers_any_input_without_a_server_error(case):
    FUZZ.exercise("registry", case)


@FUZZ.schemas["benefits"].parametrize()
@_EXAMPLES
def test_benefits_on_postgres_answers_any_input_without_a_server_error(case):
    FUZZ.exercise("benefits", case)


@FUZZ.schemas["audit"].parametrize()
@_EXAMPLES
def test_audit_on_postgres_answers_any_input_without_a_server_error(case):
    FUZZ.exercise("audit", case)


def test_zz_fuzz_totals_per_service_on_postgres():
    FUZZ.report(EXAMPLES_PER_OPERATION)
