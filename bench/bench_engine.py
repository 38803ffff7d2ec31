"""Evaluations per second of the pure engine against a parse-only baseline on the same households.

    .venv/bin/python -m bench.bench_engine [N]
"""
from __future__ import annotations

import datetime as dt
import sys
import time

from bench.datagen import generate_households
from services.benefits.engine import evaluate
from shared.policy import default_registry
from shared.snapshot import Household

AS_OF = dt.date(2020, 6, 30)


def rate(label: str, count: int, seconds: float) -> float:
    per_second = count / seconds if seconds else float("inf")
    print(f"{label:<40} {count:>7} in {seconds:7.3f}s  = {per_second:10.0f}/s")
    return per_second


def main(n: int = 2000) -> None:
    households = generate_households(n, seed=42)
    registry = default_registry()
    for household in households[:200]:  # warm pack resolution and pydantic's lazily built serializers
        evaluate(household, AS_OF, registry).to_json()

    start = time.perf_counter()
    parsed = [Household.model_validate(h) for h in households]
    baseline = rate("baseline: pydantic parse only", n, time.perf_counter() - start)

    # Results are counted, not kept: holding thousands of result objects makes the
    # cyclic GC dominate the timing, which a streaming recompute never pays.
    entitlements = 0
    start = time.perf_counter()
    for household in parsed:
        entitlements += len(evaluate(household, AS_OF, registry).entitlements)
    engine_only = rate("engine: evaluate parsed snapshot", n, time.perf_counter() - start)

    start = time.perf_counter()
    documents = 0
    for household in households:
        documents += bool(evaluate(household, AS_OF, registry).to_json())
    end_to_end = rate("parse + evaluate + to_json", n, time.perf_counter() - start)

    print(f"entitlements per household: {entitlements / n:.1f}; documents: {documents}")
    print(f"ratio engine/baseline (throughput): {engine_only / baseline:.2f}; "
          f"end-to-end/baseline: {end_to_end / baseline:.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
