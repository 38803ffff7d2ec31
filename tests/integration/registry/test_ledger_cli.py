"""`jingzhun import households`: header problems are said as such, warnings shown, --update reports outcomes."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent / "jingzhun"


def run(tmp_path, *args):
    env = {**os.environ, "JZ_VAR_DIR": str(tmp_path / "var"), "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("JZ_REGISTRY_DATABASE_URL", None)
    return subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path)


def rewrite(source: Path, target: Path, rename: dict[str, str], extra: tuple[str, str] | None = None) -> None:
    rows = list(csv.reader(source.open(encoding="utf-8-sig")))
    rows[0] = [rename.get(h, h) for h in rows[0]]
    if extra:
        rows[0].append(extra[0])
        for row in rows[1:]:
            row.append(extra[1])
    with target.open("w", encoding="utf-8-sig", newline="") as handle:
        csv.writer(handle).writerows(rows)


def test_cli_header_problems_warnings_and_update(tmp_path):
    assert run(tmp_path, "export", "sample-ledger", "sample.csv", "--rows", "30", "--seed", "3").returncode == 0
    rewrite(tmp_path / "sample.csv", tmp_path / "missing.csv", {"姓名": "名字", "与户主关系": "关系"})
    missing = run(tmp_path, "import", "households", "missing.csv")
    assert missing.returncode == 1
    assert "0 of 0" not in missing.stdout and "--skip-invalid" not in missing.stdout
    assert "the header has problems" in missing.stdout and "姓名、与户主关系" in missing.stdout

    rewrite(tmp_path / "sample.csv", tmp_path / "extra.csv", {"人均纯收入": "人均纯收入（元）"}, ("联系电话", "138"))
    imported = run(tmp_path, "import", "households", "extra.csv")
    assert imported.returncode == 0, imported.stdout
    assert "联系电话" in imported.stdout and "warning" in imported.stdout and "wrote" in imported.stdout
    strict = run(tmp_path, "import", "households", "extra.csv", "--strict", "--update")
    assert strict.returncode == 1 and "the header has problems" in strict.stdout

    updated = run(tmp_path, "import", "households", "extra.csv", "--update")
    assert updated.returncode == 0, updated.stdout
    assert "wrote 0 households (created 0, changed 0, unchanged" in updated.stdout
