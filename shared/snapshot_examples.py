"""Example households of the published contract, from snapshot_examples.json.

docs/contract.md shows the same three (tests/unit/test_snapshot_contract.py keeps them equal);
`nankang_relocated_full` carries every fact a rule reads that a client would otherwise never send
(covid produce, relocated facilities, child rehab, chronic outpatient cost, hiring / referral /
self-employment, a vocational student's entry year, person-level 低保 and 特困). The registry's
`POST /v1/households` offers them as OpenAPI examples.
"""
from __future__ import annotations

import copy
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

EXAMPLES_FILE = Path(__file__).with_name("snapshot_examples.json")


@lru_cache(maxsize=1)
def _examples() -> dict[str, dict[str, Any]]:
    return json.loads(EXAMPLES_FILE.read_text(encoding="utf-8"))


def contract_examples() -> dict[str, dict[str, Any]]:
    """name -> household body (a fresh copy: callers may change it)."""
    return copy.deepcopy(_examples())


__all__ = ["EXAMPLES_FILE", "contract_examples"]
