"""Find, in the code, every problem title/detail and validation message written as a literal or f-string.

Used by the catalogue tests (every text found must have an entry in both languages) and by whoever adds a
message: ``python -m shared.messages.scan`` lists the texts the catalogue does not cover yet.
"""
from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("shared", "services", "jingzhun_cli")

# Calls that build a problem or a validation message, and which positional argument (or keyword) is which.
# "code" arguments become a title as the builder does: code.replace("_", " ").capitalize().
BUILDERS: dict[str, dict[str, int]] = {
    "Problem": {"title": 1, "detail": 2},
    "invalid": {"msg": 1, "title": 2, "detail": 3},  # services/registry/common.py
    "_unauthorized": {"detail": 0},  # shared/auth.py
    "_reject": {"code": 1, "detail": 2},  # services/benefits/credit
    "_oauth_error": {"code": 1, "detail": 2},  # services/benefits/partners
    "InvalidIdNumber": {"msg": 0},
    "InconsistentIdNumber": {"msg": 0},
    "too_large": {"msg": 1},  # services/registry/imports/limits.py (its Chinese half is argument 0)
}


@dataclass(frozen=True)
class Found:
    path: str
    line: int
    role: str
    sample: str  # the text with each f-string hole filled by a sample value
    shape: str  # the text with each hole as {…}


def _text(node: ast.AST) -> tuple[str, str] | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value, node.value
    if isinstance(node, ast.JoinedStr):
        sample, shape = [], []
        for index, part in enumerate(node.values):
            if isinstance(part, ast.Constant):
                sample.append(str(part.value))
                shape.append(str(part.value))
            else:
                sample.append(f"V{index}x")
                shape.append("{" + ast.unparse(part.value) + "}")
        return "".join(sample), "".join(shape)
    return None


def _name(func: ast.AST) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def scan(root: Path = ROOT) -> Iterator[Found]:
    for folder in SCANNED:
        for path in sorted((root / folder).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call) or _name(node.func) not in BUILDERS:
                    continue
                roles = BUILDERS[_name(node.func)]
                args = {role: node.args[i] for role, i in roles.items() if i < len(node.args)}
                args.update({k.arg: k.value for k in node.keywords if k.arg in roles})
                for role, arg in args.items():
                    text = _text(arg)
                    if text is None:
                        continue
                    sample, shape = text
                    if role == "code":
                        sample = shape = sample.replace("_", " ").capitalize()
                    yield Found(str(path.relative_to(root)), node.lineno, role, sample, shape)


def problem_types(root: Path = ROOT) -> set[str]:
    """Every ``https://jingzhun.dev/problems/<type>`` the code names (prefix constants joined to their suffix)."""
    import re
    found = set()
    for folder in SCANNED:
        for path in (root / folder).rglob("*.py"):
            text = path.read_text(encoding="utf-8")
            found.update(re.findall(r"jingzhun\.dev/problems/([a-z0-9-]+)", text))
            found.update(re.findall(r'PROBLEM_BASE \+ "([a-z0-9-]+)"', text))
    return found


if __name__ == "__main__":
    from shared.i18n import catalogue, covered
    seen = set()
    for found in scan():
        if found.shape in seen:
            continue
        seen.add(found.shape)
        if not covered(found.sample):
            print(f"{found.path}:{found.line} [{found.role}] {found.shape}")
    print("types without entry:", sorted(problem_types() - set(catalogue().problem_types)))
