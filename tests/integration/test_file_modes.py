"""Files with personal data or secrets are readable by their owner only (0600), whatever the umask.

Registry and benefits databases hold ID numbers (clear in the registry, masks and hashes in
benefits); the identity key, the development JWT key and the partner signing key are secrets.
Checked the way a new user creates them: `jingzhun migrate`, an import, an export, the services
started once, all under the usual umask 022.
"""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from services.benefits.app import create_app as create_benefits
from services.registry.app import create_app as create_registry
from shared.config import BenefitsSettings, RegistrySettings
from tests.helpers import running_app

BIN = Path(sys.executable).parent / "jingzhun"


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "JZ_VAR_DIR": str(tmp_path / "var"), "NO_COLOR": "1", "COLUMNS": "200"}
    for name in ("JZ_REGISTRY_DATABASE_URL", "JZ_BENEFITS_DATABASE_URL", "JZ_AUDIT_DATABASE_URL"):
        env.pop(name, None)
    return subprocess.run(["sh", "-c", 'umask 022 && exec "$@"', "sh", str(BIN), *args], env=env,
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)


def test_cli_databases_exports_and_keys_are_owner_only(tmp_path):
    assert run(tmp_path, "migrate").returncode == 0
    assert run(tmp_path, "export", "sample-ledger", "sample.csv", "--rows", "20", "--seed", "5").returncode == 0
    imported = run(tmp_path, "import", "households", "sample.csv")
    assert imported.returncode == 0, imported.stdout + imported.stderr
    for name in ("export.csv", "export.xlsx"):
        exported = run(tmp_path, "export", "households", name)
        assert exported.returncode == 0, exported.stdout + exported.stderr
        assert mode(tmp_path / name) == 0o600, name  # clear ID numbers (the CLI acts as admin)
    var = tmp_path / "var"
    databases = sorted(var.glob("*.db*"))
    assert {p.name for p in databases} >= {"registry.db", "benefits.db", "audit.db"}, databases
    wide = {p.name: oct(mode(p)) for p in databases if mode(p) != 0o600}
    assert not wide, f"database files readable by others: {wide}"


async def test_services_create_their_databases_and_keys_owner_only(tmp_path):
    old_umask = os.umask(0o022)
    try:
        common = dict(var_dir=tmp_path / "var", kafka_bootstrap="127.0.0.1:1", log_json=False, run_consumer=False)
        registry = create_registry(RegistrySettings(**common))
        benefits = create_benefits(BenefitsSettings(**common))
        async with running_app(registry) as reg, running_app(benefits) as ben:
            assert (await reg.get("/healthz")).status_code == 200
            assert (await ben.get("/healthz")).status_code == 200
            files = [p for p in (tmp_path / "var").rglob("*") if p.is_file()]
            names = {p.name for p in files}
            assert {"registry.db", "benefits.db", "identity.key"} <= names, names
            wide = {str(p.relative_to(tmp_path)): oct(mode(p)) for p in files
                    if (p.suffix in (".key", ".pem") or ".db" in p.name) and mode(p) != 0o600}
            assert not wide, f"readable by others: {wide}"
    finally:
        os.umask(old_umask)
