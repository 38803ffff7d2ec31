"""The registry-create benchmark (bench/bench_registry_create.py) runs: --quick creates households through the API
and inserts the baseline's rows; no timing is asserted. PostgreSQL only (the benchmark's subject)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_URL, REQUIRE_POSTGRES

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]


def test_quick_registry_create_benchmark_creates_households(tmp_path):
    if not POSTGRES_URL:
        if REQUIRE_POSTGRES:
            pytest.fail("JZ_TEST_POSTGRES_URL is not set but PostgreSQL tests are required")
        pytest.skip("set JZ_TEST_POSTGRES_URL: the benchmark runs on PostgreSQL")
    out = tmp_path / "rows.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("JZ_")}
    result = subprocess.run([sys.executable, "-m", "bench.bench_registry_create", "--quick", "--clients", "1,2",
                             "--postgres-url", POSTGRES_URL, "--json", str(out)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text(encoding="utf-8"))
    rows = report["rows"]
    assert [(row["path"].split(" (")[0], row["clients"]) for row in rows] == [
        ("asyncpg baseline", 1), ("POST /v1/households", 1), ("asyncpg baseline", 2), ("POST /v1/households", 2)]
    for row in rows:
        assert row["requests"] > 0 and row["errors"] == 0, row  # every create a 201: fresh ID numbers each time
        assert row["rps"] > 0
    # every 201 is a stored household with its event (wrk may leave a request or two answered after it stopped)
    assert report["households"] >= report["answered_201"] > 0
    assert report["outbox_rows"] == report["households"]
    assert "registry database after the run" in result.stdout
