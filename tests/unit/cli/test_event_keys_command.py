"""`jingzhun event-keys` creates one 0600 key per service and a keyring; --rotate retires, never drops."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

BIN = Path(sys.executable).parent / "jingzhun"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN), "event-keys", *args], capture_output=True, text=True, timeout=120)


def test_keys_are_created_then_rotated_with_the_old_key_kept_as_retired(tmp_path):
    keys, keyring = tmp_path / "keys", tmp_path / "keyring.json"
    first = run("--keys-dir", str(keys), "--keyring", str(keyring))
    assert first.returncode == 0, first.stderr
    assert sorted(line.split("\t")[1] for line in first.stdout.splitlines()) == ["audit", "benefits", "registry"]
    for service in ("registry", "benefits", "audit"):
        assert stat.S_IMODE(os.stat(keys / service / "events.pem").st_mode) == 0o600
    old_registry = next(k["signer"] for k in json.loads(keyring.read_text())["keys"] if k["source"] == "registry")
    second = run("--keys-dir", str(keys), "--keyring", str(keyring), "--rotate", "registry")
    assert second.returncode == 0, second.stderr
    registry_keys = {k["signer"]: k["retired"] for k in json.loads(keyring.read_text())["keys"]
                     if k["source"] == "registry"}
    assert registry_keys[old_registry] is True and list(registry_keys.values()).count(False) == 1


def test_an_unknown_service_is_refused(tmp_path):
    done = run("--keys-dir", str(tmp_path), "--keyring", str(tmp_path / "k.json"), "--rotate", "regsitry")
    assert done.returncode == 2 and "regsitry" in done.stderr


def test_one_service_only(tmp_path):
    done = run("--keys-dir", str(tmp_path / "keys"), "--keyring", str(tmp_path / "k.json"), "--service", "benefits")
    assert done.returncode == 0, done.stderr
    assert [line.split("\t")[1] for line in done.stdout.splitlines()] == ["benefits"]
    assert not (tmp_path / "keys" / "registry").exists()
