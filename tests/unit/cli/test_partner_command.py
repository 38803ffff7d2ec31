"""`jingzhun partner create --format env` prints lines a shell can eval, and the secret works."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent / "jingzhun"


def test_env_format_sets_client_id_and_secret_in_a_shell(tmp_path):
    env = {**os.environ, "JZ_VAR_DIR": str(tmp_path)}
    env.pop("JZ_BENEFITS_DATABASE_URL", None)
    done = subprocess.run(["bash", "-c", f'eval "$({BIN} partner create --name "南康农商银行" --scope credit '
                                         f'--format env)"; echo "id=$CLIENT_ID secret=${{#CLIENT_SECRET}}"'],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip().splitlines()[-1]
    client_id, secret_length = line.split()
    assert client_id.startswith("id=jzc_") and int(secret_length.split("=")[1]) >= 32


def test_an_unknown_format_is_refused(tmp_path):
    env = {**os.environ, "JZ_VAR_DIR": str(tmp_path)}
    done = subprocess.run([str(BIN), "partner", "create", "--name", "x", "--scope", "credit", "--format", "yaml"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "json or env" in done.stderr
