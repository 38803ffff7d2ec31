"""Every throughput benchmark of issue 15 in one run, and one table of project vs same-run baseline vs target.

    make bench                                   # the full run (PostgreSQL; about an hour and a half on two cores)
    .venv/bin/python -m bench.all --quick        # each benchmark small (a few minutes): the table's shape, not numbers
    .venv/bin/python -m bench.all --only http,verify

Each benchmark runs as its own process (``python -m bench.<name> ... --json FILE``) with its full output going to
``var/bench/<name>.log``; this script reads the JSON each one writes and prints the table (and, with ``--json``,
writes it). The benchmarks and what each row compares:

* ``http`` (bench_http, wrk -c 50): the cheapest authenticated read (partner ``whoami``), a household and its
  entitlements, against a bare FastAPI route in the same run; the partner decisions (credit eligibility, one-stop
  settlement, each writing its access event) by their p99.
* ``create`` (bench_registry_create): ``POST /v1/households`` against asyncpg inserting the same JSON and an outbox
  row in one transaction, per number of clients; run with the registry's workers (``--workers``, default 2).
* ``pipeline`` (bench_pipeline_sustained): households written to the registry until benefits and audit hold them
  all, against aiokafka produce + consume + a batched insert of the same messages; and whether the consumers'
  lag stayed bounded while the writes went on.
* ``recompute`` (bench_recompute --scale): a policy change over 100,000 and 1,000,000 households on PostgreSQL in
  key-range partitions (time, RSS per process, cost of 1M vs 100k), against the pure engine in one process.
* ``verify`` (bench_verify): audit verify against sha256 over the same stored bytes (fetch included).

Ratios are only comparable within one run: the machine is shared, and both sides of a ratio run on it.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHES = ("http", "create", "pipeline", "recompute", "verify")


@dataclass
class Line:
    """One row of the table: what was measured, the project's figure, the same-run baseline's, and the target."""
    path: str
    project: str
    baseline: str
    ratio: str
    target: str
    met: bool | None  # None: not judged (a figure shown for context, or the benchmark did not run)


def commands(args, out: Path) -> dict[str, list[str]]:
    """The command line of each benchmark, writing its JSON to ``out/<name>.json``."""
    py = [sys.executable, "-m"]
    quick = args.quick
    return {
        "http": py + ["bench.bench_http", "--json", str(out / "http.json"), "--workers", str(args.workers)]
        + (["--quick"] if quick else []),
        "create": py + ["bench.bench_registry_create", "--json", str(out / "create.json"),
                        "--workers", str(args.workers)] + (["--quick"] if quick else []),
        "pipeline": py + ["bench.bench_pipeline_sustained", "--json", str(out / "pipeline.json"), "--backend",
                          "postgres" if args.postgres_url else "sqlite", "--workers", str(args.workers)]
        + (["--n", "200", "--clients", "4"] if quick else ["--n", str(args.pipeline_n)]),
        "recompute": py + ["bench.bench_recompute", "--scale", "--json", str(out / "recompute.json"),
                           "--workers", str(args.workers)]
        + (["--sizes", "1000,2000", "--baseline-n", "500", "--no-initial-job"] if quick
           else ["--sizes", args.recompute_sizes, "--no-initial-job"]),
        "verify": py + ["bench.bench_verify", "--json", str(out / "verify.json"), "--backend",
                        "postgres" if args.postgres_url else "sqlite"] + (["--quick"] if quick else []),
    }


def _f(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def http_lines(rows: list[dict]) -> list[Line]:
    by_name = {row["name"]: row for row in rows}
    bare = by_name.get("bare")
    if not bare:
        return []
    base = f"bare route {_f(bare['rps'])} req/s, p99 {_f(bare['p99_ms'], 1)} ms"
    lines = []
    for name, label, target in (("whoami", "GET whoami (cheapest authenticated)", 0.50),
                                ("household", "GET household (registry)", 0.25),
                                ("entitlements", "GET entitlements (benefits)", 0.25)):
        row = by_name.get(name)
        if row:
            lines.append(Line(label, f"{_f(row['rps'])} req/s, p99 {_f(row['p99_ms'], 1)} ms", base,
                              f"{row['ratio']:.2f}", f">= {target:.2f}", row["ratio"] >= target))
    for name, label in (("eligibility", "POST credit eligibility"), ("one-stop", "POST one-stop settlement")):
        row = by_name.get(name)
        if row:
            lines.append(Line(label, f"{_f(row['rps'])} req/s, p99 {_f(row['p99_ms'], 1)} ms", base,
                              f"{row['ratio']:.2f}", "p99 <= 50 ms", row["p99_ms"] <= 50.0))
    return lines


def create_lines(data: dict) -> list[Line]:
    rows = data.get("rows", [])
    lines = []
    for row in rows:
        if not row["path"].startswith("POST"):
            continue
        base = next((r for r in rows if r["path"] == "asyncpg baseline" and r["clients"] == row["clients"]), None)
        lines.append(Line(f"{row['path']}, {row['clients']} clients",
                          f"{_f(row['rps'])} req/s, p99 {_f(row['p99_ms'], 1)} ms",
                          f"asyncpg insert + outbox {_f(base['rps'])} req/s" if base else "-",
                          f"{row['ratio']:.2f}", ">= 0.30", row["ratio"] >= 0.30))
    return lines


def pipeline_lines(runs: list[dict]) -> list[Line]:
    lines = []
    for run in runs:
        ratio = run["end_to_end"] / run["ceiling"] if run["ceiling"] else 0.0
        complete = run["benefits_snapshots"] == run["n"] and run["audit_households"] == run["n"]
        lines.append(Line(f"pipeline, {run['n']:,} households ({run['backend']}), end to end",
                          f"{_f(run['end_to_end'], 1)} households/s (registry accepted {_f(run['write_rate'], 1)}/s)"
                          if "write_rate" in run else f"{_f(run['end_to_end'], 1)} households/s",
                          f"produce + consume + insert {_f(run['ceiling'])}/s", f"{ratio:.2f}", ">= 0.40",
                          ratio >= 0.40 and complete))
        first, second, verdict = run.get("lag_trend") or (0, 0, "not sampled")
        lines.append(Line(f"pipeline, {run['n']:,} households: consumers' lag while writing",
                          f"peak {first} then {second} messages", "-", "-", "bounded",
                          verdict == "bounded" if verdict != "too short to tell" else None))
    return lines


def recompute_lines(data: dict) -> list[Line]:
    sizes = data.get("sizes", [])
    if not sizes:
        return []
    engine = data["engine_eval_json_rate"]
    first = sizes[0]
    lines = []
    for result in sizes:
        job = result["policy"]
        rss = max([*job.get("worker_rss", []), data.get("bench_rss_mb", 0)])
        cost = (job["seconds"] / first["policy"]["seconds"]) * (first["n"] / result["n"])
        scale = result["n"] / first["n"]
        lines.append(Line(f"policy change over {result['n']:,} households ({data['workers']} workers)",
                          f"{_f(job['seconds'], 1)} s = {_f(job['rate'])} households/s, peak RSS {_f(rss)} MiB",
                          f"pure engine {_f(engine)}/s (one process)", f"{job['rate'] / engine:.2f}",
                          "<= 600 s per 1M, <= 512 MiB",
                          (job["seconds"] * 1_000_000 / result["n"] <= 600) and rss <= 512))
        if result is not first:
            lines.append(Line(f"cost of {result['n']:,} vs {first['n']:,}",
                              f"{job['seconds'] / first['policy']['seconds']:.2f}x for {scale:g}x the households",
                              "-", f"{cost:.2f}", f"<= {11 / 10:.2f} per household", cost <= 1.1))
    return lines


def verify_lines(data: dict) -> list[Line]:
    lines = []
    for backend, r in data.items():
        ratio = r["verify"] / r["baseline"]
        lines.append(Line(f"audit verify ({backend})", f"{_f(r['verify'])} records/s",
                          f"sha256 over the stored bytes {_f(r['baseline'])}/s", f"{ratio:.2f}", ">= 0.50",
                          ratio >= 0.50 and bool(r["ok"])))
        lines.append(Line(f"audit verify --full ({backend}, every signature)", f"{_f(r['full'])} records/s",
                          f"sha256 {_f(r['baseline'])}/s", f"{r['full'] / r['baseline']:.2f}", "-", None))
    return lines


READERS = {"http": http_lines, "create": create_lines, "pipeline": pipeline_lines, "recompute": recompute_lines,
           "verify": verify_lines}


def table(lines: list[Line]) -> str:
    """The lines as a Markdown table (pasteable into an issue note)."""
    mark = {True: "yes", False: "NO", None: "-"}
    out = ["| path | project | same-run baseline | ratio | target | met |", "|---|---|---|---|---|---|"]
    out += [f"| {l.path} | {l.project} | {l.baseline} | {l.ratio} | {l.target} | {mark[l.met]} |" for l in lines]
    return "\n".join(out)


def collect(out: Path, names: list[str], failed: dict[str, str]) -> list[Line]:
    lines: list[Line] = []
    for name in names:
        path = out / f"{name}.json"
        if name in failed or not path.exists():
            lines.append(Line(name, failed.get(name, "no result written"), "-", "-", "-", None))
            continue
        lines += READERS[name](json.loads(path.read_text(encoding="utf-8")))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="every benchmark small: checks they run, not numbers")
    parser.add_argument("--only", default=",".join(BENCHES), help=f"comma-separated, of {', '.join(BENCHES)}")
    parser.add_argument("--postgres-url", default=os.environ.get("JZ_BENCH_POSTGRES_URL")
                        or os.environ.get("JZ_TEST_POSTGRES_URL")
                        or "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--sqlite", action="store_true", help="no PostgreSQL (recompute and create are skipped)")
    parser.add_argument("--workers", type=int, default=2, help="registry workers and recompute partitions (default 2)")
    parser.add_argument("--pipeline-n", type=int, default=5000, help="households through the pipeline (default 5000)")
    parser.add_argument("--recompute-sizes", default="100000,1000000")
    parser.add_argument("--logs", type=Path, default=ROOT / "var" / "bench", help="where each benchmark's output goes")
    parser.add_argument("--json", type=Path, help="also write the table's rows to this file")
    args = parser.parse_args(argv)
    if args.sqlite:
        args.postgres_url = None
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = set(names) - set(BENCHES)
    if unknown:
        parser.error(f"unknown benchmark(s) {sorted(unknown)}: choose from {', '.join(BENCHES)}")
    args.logs.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if args.postgres_url:
        env["JZ_BENCH_POSTGRES_URL"] = args.postgres_url
    else:
        env.pop("JZ_BENCH_POSTGRES_URL", None)
    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="jz-bench-all-") as tmp:
        out = Path(tmp)
        planned = commands(args, out)
        for name in names:
            if name in ("recompute", "create") and not args.postgres_url:
                failed[name] = "skipped: needs PostgreSQL"
                continue
            log_path = args.logs / f"{name}.log"
            command = planned[name]
            if name in ("recompute", "create"):
                command = command + ["--postgres-url", args.postgres_url]
            print(f"== {name}: {' '.join(command[2:])} (output: {log_path})", flush=True)
            started = time.monotonic()
            with log_path.open("w", encoding="utf-8") as log:
                done = subprocess.run(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            print(f"   {'done' if done.returncode == 0 else f'FAILED (exit {done.returncode})'} in "
                  f"{time.monotonic() - started:.0f} s", flush=True)
            if done.returncode != 0:
                failed[name] = f"failed (exit {done.returncode}), see {log_path}"
        lines = collect(out, names, failed)
    print()
    print(table(lines))
    if args.json:
        args.json.write_text(json.dumps([asdict(line) for line in lines], indent=1, ensure_ascii=False),
                             encoding="utf-8")
    return 1 if failed and any(not reason.startswith("skipped") for reason in failed.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
