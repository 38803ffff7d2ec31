"""bench.all's one table: each benchmark's JSON (in the shape each writes it) read into rows judged against
issue 15's targets. The benchmarks themselves have their own CI smokes (tests/integration/test_bench_smoke_*)."""
from __future__ import annotations

import json

from bench import all as bench_all


def _http_rows():
    def row(name, rps, p99, ratio):
        return {"name": name, "path": "/x", "rps": rps, "p50_ms": 1.0, "p99_ms": p99, "requests": 10,
                "non_2xx": 0, "socket_errors": 0, "ratio": ratio}
    return [row("bare", 4000, 20, 1.0), row("cheapest", 2100, 40, 0.525), row("whoami", 1900, 60, 0.475),
            row("household", 1100, 80, 0.275), row("entitlements", 900, 90, 0.225),
            row("eligibility", 500, 49.0, 0.125), row("one-stop", 400, 51.0, 0.1)]


def test_http_rows_are_judged_by_ratio_or_p99():
    lines = {line.path: line for line in bench_all.http_lines(_http_rows())}
    assert lines["GET whoami (cheapest authenticated)"].met is False  # 0.475 < 0.50
    assert lines["GET household (registry)"].met is True
    assert lines["GET entitlements (benefits)"].met is False
    assert lines["POST credit eligibility"].met is True  # p99 49 ms
    assert lines["POST one-stop settlement"].met is False  # p99 51 ms
    assert "bare route 4,000 req/s" in lines["GET household (registry)"].baseline


def test_create_rows_pair_each_concurrency_with_its_baseline():
    data = {"rows": [
        {"path": "asyncpg baseline", "clients": 1, "rps": 400.0, "p50_ms": 2, "p99_ms": 5, "requests": 1, "errors": 0,
         "ratio": 0, "cpu_ms": 0},
        {"path": "POST /v1/households (2 workers)", "clients": 1, "rps": 130.0, "p50_ms": 7, "p99_ms": 20,
         "requests": 1, "errors": 0, "ratio": 0.325, "cpu_ms": 3},
        {"path": "asyncpg baseline", "clients": 8, "rps": 900.0, "p50_ms": 2, "p99_ms": 5, "requests": 1, "errors": 0,
         "ratio": 0, "cpu_ms": 0},
        {"path": "POST /v1/households (2 workers)", "clients": 8, "rps": 250.0, "p50_ms": 7, "p99_ms": 20,
         "requests": 1, "errors": 0, "ratio": 0.278, "cpu_ms": 3}]}
    lines = bench_all.create_lines(data)
    assert [(line.path, line.met) for line in lines] == [("POST /v1/households (2 workers), 1 clients", True),
                                                         ("POST /v1/households (2 workers), 8 clients", False)]
    assert lines[1].baseline == "asyncpg insert + outbox 900 req/s"


def test_pipeline_needs_the_ratio_every_household_and_a_bounded_lag():
    run = {"backend": "PostgreSQL/http", "n": 1000, "end_to_end": 45.0, "ceiling": 100.0, "write_rate": 60.0,
           "benefits_snapshots": 1000, "audit_households": 999, "lag_trend": [10, 40, "bounded"]}
    ratio, lag = bench_all.pipeline_lines([run])
    assert ratio.ratio == "0.45" and ratio.met is False  # one household missing in audit
    assert lag.met is True
    run.update(audit_households=1000, lag_trend=[10, 400, "growing"])
    ratio, lag = bench_all.pipeline_lines([run])
    assert ratio.met is True and lag.met is False


def test_recompute_scales_to_a_million_and_compares_the_cost():
    def size(n, seconds, rss):
        return {"n": n, "initial": None, "policy": {"seconds": seconds, "rate": n / seconds, "worker_rss": [rss, rss]}}
    data = {"workers": 2, "engine_eval_json_rate": 2000.0, "bench_rss_mb": 120,
            "sizes": [size(100_000, 50.0, 200), size(1_000_000, 560.0, 300)]}
    small, large, cost = bench_all.recompute_lines(data)
    assert small.met is True and large.met is True  # 560 s <= 600 s, 300 MiB
    assert cost.ratio == "1.12" and cost.met is False  # 11.2 x for 10 x the households
    data["sizes"][1]["policy"]["worker_rss"] = [600, 300]
    assert bench_all.recompute_lines(data)[1].met is False


def test_verify_rows_and_a_failed_benchmark_are_in_the_table(tmp_path):
    (tmp_path / "verify.json").write_text(json.dumps({"postgres": {"baseline": 40000.0, "verify": 24000.0,
                                                                   "full": 5000.0, "chain_only": 30000.0,
                                                                   "signatures": 8000.0, "ok": True}}))
    lines = bench_all.collect(tmp_path, ["verify", "http"], {"http": "failed (exit 1), see var/bench/http.log"})
    assert [line.met for line in lines] == [True, None, None]
    text = bench_all.table(lines)
    assert "| audit verify (postgres) | 24,000 records/s | sha256 over the stored bytes 40,000/s | 0.60 | >= 0.50 | yes |" \
        in text
    assert "| http | failed (exit 1), see var/bench/http.log |" in text
