"""CI smoke run of bench/bench_pipeline_sustained.py --quick (SQLite): the system starts, 30 households go
registry -> benefits -> audit, and the table is printed with numbers. No timing is asserted."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_pipeline_sustained_quick():
    env = {k: v for k, v in os.environ.items() if not k.startswith("JZ_")}
    done = subprocess.run([sys.executable, "-m", "bench.bench_pipeline_sustained", "--quick"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    out = done.stdout
    assert done.returncode == 0, out[-3000:] + done.stderr[-3000:]
    row = re.search(r"^SQLite/http\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+\d+/\d+\s+.+?\s+([\d.]+)$",
                    out, re.M)
    assert row, out
    households, writes, end_to_end, ceiling, ratio, events = row.groups()
    assert int(households) == 30 and float(writes) > 0 and float(end_to_end) > 0 and float(ceiling) > 0
    assert 0 < float(ratio) and float(events) >= 1.0  # one entitlements.decided per household version at least
    assert "benefits holds 30/30, audit 30/30" in out, out
    assert re.search(r'"entitlements.decided": 3[01]\b', out) and "entitlement.granted" not in out, out
