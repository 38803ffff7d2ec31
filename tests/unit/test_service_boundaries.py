"""Services never import each other's code (../shared/DESIGN.md): they talk over HTTP and events, and what
two of them need (settings, envelopes, the policy packs) lives in ``shared/``. ``shared/`` imports no service.
The CLI (``jingzhun_cli``) is an operator's tool over all three and may import any of them."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "__init__.py").exists())


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports, at any depth (function-level imports count too)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.extend([(node.lineno, node.module)] + [(node.lineno, f"{node.module}.{a.name}") for a in node.names])
    return found


def crossings(package: Path, allowed_service: str | None) -> list[str]:
    wrong = []
    for path in sorted(package.rglob("*.py")):
        for line, module in imported_modules(path):
            parts = module.split(".")
            if parts[0] == "services" and len(parts) > 1 and parts[1] != allowed_service:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return sorted(set(wrong))


def test_there_are_services_to_check():
    assert {"registry", "benefits", "audit"} <= set(SERVICES)


def test_no_service_imports_another():
    wrong = [hit for service in SERVICES for hit in crossings(ROOT / "services" / service, service)]
    assert wrong == [], "services talk over HTTP and events, not imports:\n" + "\n".join(wrong)


def test_shared_imports_no_service():
    wrong = crossings(ROOT / "shared", None)
    assert wrong == [], "shared/ is below every service:\n" + "\n".join(wrong)


def test_the_check_sees_a_function_level_import(tmp_path):
    """The audit → benefits imports this test was written for sat inside functions."""
    offender = tmp_path / "services" / "audit"
    offender.mkdir(parents=True)
    (offender / "late.py").write_text("def f():\n    from services.benefits.packs import resolve_pack\n")
    assert [module for _, module in imported_modules(offender / "late.py")][0] == "services.benefits.packs"
