"""CI smoke runs of bench/bench_recompute.py, so it cannot rot: the default mode on a few hundred households
(SQLite), and the scale mode on PostgreSQL with two worker processes. Each
must finish, print its rates and ratios and find the decisions it should. No timing is asserted."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import POSTGRES_URL

ROOT = Path(__file__).resolve().parents[2]


def run(*arguments: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JZ_")}
    done = subprocess.run([sys.executable, "-m", "bench.bench_recompute", *arguments], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_bench_recompute_default_mode():
    """SQLite only: the scale mode below runs the PostgreSQL side."""
    out = run("--n", "120", "--batch-size", "50", "--backend", "sqlite")
    summary = re.search(r"SQLite\s+initial: (\d+)/s \((\d+) decisions, ratio (\d+\.\d\d)\)\s+unchanged: (\d+)/s "
                        r"\(0 decisions", out)
    assert summary and int(summary.group(2)) > 120, out
    assert re.search(r"baseline: pure engine \(eval\+json\)\s+120 in", out), out


async def test_bench_recompute_scale_mode(databases):
    if databases.backend != "postgres":
        pytest.skip("the scale mode runs on PostgreSQL (partitions need more than one writer)")
    out = run("--scale", "--sizes", "400", "--workers", "2", "--batch-size", "100", "--baseline-n", "100",
              "--no-initial-job", "--postgres-url", POSTGRES_URL)
    assert re.search(r"seed decided state \(no events\)\s+400 in", out), out
    job = re.search(r"policy change \(double_rice_oil.household_cap 2400\)\s+400 in .*? households/s "
                    r"\((\d+) households changed, (\d+) decisions\)", out)
    assert job and 0 < int(job.group(1)) < 400, out  # a share of the households, not all, not none
    workers = re.search(r"workers \[(\d+), (\d+)\] MB", out)  # two partitions, each in its own process
    assert workers and all(int(mb) > 0 for mb in workers.groups()), out
    assert re.search(r"400 policy\s+[\d.]+\s+\d+\s+\d+\s+\d+\s+[\d.]+\s+1.00x \(1.00\)\s+[\d.]+", out), out
