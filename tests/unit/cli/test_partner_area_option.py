"""`jingzhun partner create --area` registers a client limited to an area; a bad area is refused."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent / "jingzhun"


def _create(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "JZ_VAR_DIR": str(tmp_path), "COLUMNS": "200"}
    env.pop("JZ_BENEFITS_DATABASE_URL", None)
    return subprocess.run([str(BIN), "partner", "create", "--name", "赣州民政 DCI", *args],
                          env=env, capture_output=True, text=True, timeout=120)


def test_area_option_is_stored_and_printed(tmp_path):
    done = _create(tmp_path, "--scope", "dci", "--area", "360703")
    assert done.returncode == 0, done.stderr
    client = json.loads(done.stdout)
    assert client["scopes"] == ["dci"] and client["area"] == "360703" and client["client_id"].startswith("jzc_")


def test_a_bad_area_is_refused(tmp_path):
    done = _create(tmp_path, "--scope", "dci", "--area", "36-07")
    assert done.returncode == 2 and "2 to 12 digits" in done.stderr
