"""The HTTP benchmark (bench/bench_http.py) runs: its --quick mode gives a row per path with requests served.

No timing is asserted (the machine running wrk runs the services too). Skipped without wrk
(`apt-get install -y wrk`; .ci/run installs it).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[2]
PATHS = ["/bare", "/v1/cadres?limit=1", "/v1/partners/whoami", "/v1/households/hh-demo-0002",
         "/v1/households/hh-demo-0002/entitlements", "POST /v1/credit/eligibility", "POST /v1/settlements/one-stop"]


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install -y wrk)")
def test_quick_http_benchmark_measures_every_path(tmp_path):
    out = tmp_path / "rows.json"
    env = {k: v for k, v in os.environ.items() if k != "JZ_BENCH_POSTGRES_URL"}  # SQLite: no database to make
    result = subprocess.run([sys.executable, "-m", "bench.bench_http", "--quick", "--json", str(out)], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=540)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    rows = json.loads(out.read_text(encoding="utf-8"))
    assert [row["path"] for row in rows] == PATHS, result.stdout
    for row in rows:
        assert row["rps"] > 0 and row["requests"] > 0, row
        assert row["non_2xx"] == 0, row  # every answer was a 200: the tokens and the demo data were right
    assert rows[0]["ratio"] == 1.0
    print(result.stdout[-1500:])


def test_the_benchmark_says_how_to_install_wrk_when_it_is_missing(tmp_path):
    env = {**os.environ, "PATH": str(tmp_path)}  # no wrk on this PATH
    result = subprocess.run([sys.executable, "-m", "bench.bench_http", "--quick"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "skipped" in result.stdout and "apt-get install -y wrk" in result.stdout


def test_wrk_output_is_parsed():
    from bench.bench_http import parse_wrk
    output = """Running 2s test @ http://127.0.0.1:1/bare
  2 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    13.21ms    2.05ms  30.00ms   90.00%
    Req/Sec     1.90k   200.00     2.10k    80.00%
  Latency Distribution
     50%  850.00us
     75%   13.50ms
     90%   14.20ms
     99%    1.20s
  7600 requests in 2.00s, 1.10MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 12
Requests/sec:   3800.50
Transfer/sec:    550.00KB
"""
    assert parse_wrk(output) == {"rps": 3800.5, "p50_ms": 0.85, "p99_ms": 1200.0, "requests": 7600, "non_2xx": 12,
                                 "socket_errors": 3}
