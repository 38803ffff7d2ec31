"""Every refusal of access names its problem type: a client (or the docs' Problem schema) tells a 403 from a
404 by ``type``, and benefits' area refusals answered ``about:blank`` while the others said ``forbidden``.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = "https://jingzhun.dev/problems/forbidden"


def _problem_calls_with_status(status: int):
    for folder in ("shared", "services", "jingzhun_cli"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Problem" and node.args
                        and isinstance(node.args[0], ast.Constant) and node.args[0].value == status):
                    yield path.relative_to(ROOT), node


def test_every_403_problem_has_the_forbidden_type():
    calls = list(_problem_calls_with_status(403))
    assert len(calls) >= 10  # the scan finds the raise sites at all
    untyped = [f"{path}:{node.lineno}" for path, node in calls
               if not any(k.arg == "type_" and isinstance(k.value, ast.Constant) and k.value.value == FORBIDDEN
                          for k in node.keywords)]
    assert untyped == [], f"403 problems without type_={FORBIDDEN!r}: {untyped}"
