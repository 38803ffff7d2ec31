"""CI smoke run of bench/bench_verify.py --quick on each backend: it seeds, verifies ok and prints the verify
rate, its baseline (sha256 over the same stored bytes, fetch included) and their ratio. No timing is asserted."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import POSTGRES_URL

ROOT = Path(__file__).resolve().parents[2]
RATE = r"=\s+([\d,]+) records/s"


async def test_bench_verify_quick(databases):
    command = [sys.executable, "-m", "bench.bench_verify", "--quick", "--backend",
               "sqlite" if databases.backend == "sqlite" else "postgres"]
    if databases.backend == "postgres":
        command += ["--postgres-url", POSTGRES_URL]
    env = {k: v for k, v in os.environ.items() if not k.startswith("JZ_")}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    assert "verified ok" in out and "NOT OK" not in out and "VERIFY FAILED" not in out, out
    baseline = re.search(r"baseline: fetch \+ sha256 of stored bytes\s+2,001 in .*?" + RATE, out)
    verify = re.search(r"verify_ledger \(after the checkpoint\)\s+2,001 in .*?" + RATE, out)
    full = re.search(r"verify_ledger --full \(every signature\)\s+2,001 in .*?" + RATE
                     + r" verified ok, 2,001 signatures", out)
    assert baseline and verify and full, out
    assert re.search(r"attest \(checkpoint, once per record\)\s+2,000 in .*?" + RATE, out), out
    assert int(baseline.group(1).replace(",", "")) > 0 and int(verify.group(1).replace(",", "")) > 0
    summary = re.search(r"baseline ([\d,]+)/s\s+verify ([\d,]+)/s\s+ratio verify/baseline (\d+\.\d\d)", out)
    assert summary, out
