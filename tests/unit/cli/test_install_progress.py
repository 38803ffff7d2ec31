"""`make install` says what it is doing (issue 12 item 7): deploy/dev-install.sh against a stand-in pip.

The stand-in prints what pip prints on a first install (or fails), so the script's progress lines and its
failure report are checked without a network or minutes of installing.
"""
from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "deploy" / "dev-install.sh"

FIRST_INSTALL = """\
Obtaining file:///work/main
WARNING: Location 'file:///opt/pypi-more/simple/fastapi/' is ignored: it is neither a file nor a directory.
Collecting fastapi>=0.110 (from jingzhun==0.1.0)
  Using cached fastapi-0.115.0-py3-none-any.whl (94 kB)
Collecting uvicorn>=0.29 (from uvicorn[standard]>=0.29->jingzhun==0.1.0)
Collecting openpyxl>=3.1 (from jingzhun==0.1.0)
Installing collected packages: openpyxl, uvicorn, fastapi, jingzhun
Successfully installed fastapi-0.115.0 jingzhun-0.1.0 openpyxl-3.1.5 uvicorn-0.30.0
"""


def _fake_venv(tmp_path: Path, pip_output: str, exit_code: int = 0) -> Path:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for name, body in (("python", 'echo "Python 3.11.7"'),
                       ("pip", f"cat <<'EOF'\n{pip_output}EOF\nexit {exit_code}")):
        path = venv / "bin" / name
        path.write_text(f"#!/usr/bin/env bash\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return venv


def _run(venv: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(SCRIPT)], cwd=REPO, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "VENV": str(venv)})


def test_a_first_install_names_each_step_and_each_package_as_pip_collects_it(tmp_path):
    result = _run(_fake_venv(tmp_path, FIRST_INSTALL))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("== [1/3] Python virtual environment")
    assert "   [  1] fastapi>=0.110" in lines
    assert "   [  3] openpyxl>=3.1" in lines
    assert "   installed 4 packages" in lines
    assert any(line.startswith("== [2/3]") for line in lines) and any(line.startswith("== [3/3]") for line in lines)
    assert lines[-1].startswith("== installed in ")
    assert "is ignored" not in result.stdout  # the machine's pip-index noise stays in the log


def test_a_second_install_says_everything_is_already_there(tmp_path):
    result = _run(_fake_venv(tmp_path, "Requirement already satisfied: fastapi in x\n" * 3))
    assert result.returncode == 0
    assert "   everything already installed (3 requirements satisfied)" in result.stdout.splitlines()


def test_a_failed_install_exits_with_pips_status_and_shows_its_output(tmp_path):
    failing = "Collecting nosuchpackage\nERROR: No matching distribution found for nosuchpackage\n"
    result = _run(_fake_venv(tmp_path, failing, exit_code=1))
    assert result.returncode == 1
    assert "pip failed (exit 1)" in result.stderr
    assert "No matching distribution found for nosuchpackage" in result.stderr
    assert "[3/3]" not in result.stdout  # it stops at the failing step
