"""The ledger form keeps no clear number and no exact birth date next to a mask."""
from __future__ import annotations

import os
import stat

from shared.personal_data import keyed_id_hasher, ledger_form, load_or_create_secret


def test_ledger_form_masks_hashes_and_keeps_only_the_birth_year():
    hasher = keyed_id_hasher(b"k")
    data = {"members": [{"id_number": "360782197803150018", "birth_date": "1978-03-15", "name": "钟大山"}],
            "note": {"birth_date": None}}
    form = ledger_form(data, hasher)
    member = form["members"][0]
    assert member == {"id_number": "360782********0018", "id_number_hash": hasher("360782197803150018"),
                      "birth_year": 1978, "name": "钟大山"}
    assert form["note"] == {"birth_year": None}
    assert ledger_form(form, hasher) == form  # idempotent: a second pass changes nothing


def test_an_already_hashed_member_keeps_its_hash_and_gains_none():
    member = {"id_number": "360782********0018", "id_number_hash": "ab" * 32}
    assert ledger_form(member, keyed_id_hasher(b"k")) == member


def test_secret_files_are_created_owner_only(tmp_path):
    path = tmp_path / "keys" / "identity.key"
    first = load_or_create_secret(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_secret(path) == first and len(first) == 64


# --- the identity key, event form and masked views (issue 9 item 2) --------------------------

import asyncio  # noqa: E402
import datetime as dt  # noqa: E402

import pytest  # noqa: E402

from shared.config import CommonSettings  # noqa: E402
from shared.personal_data import (event_form, identity_hasher, identity_key, masked_member,  # noqa: E402
                                  masked_snapshot, private_output_file)

CLEAR = "360782197803150018"


def test_production_without_the_identity_key_refuses_naming_it(tmp_path):
    with pytest.raises(RuntimeError, match="JZ_IDENTITY_KEY"):
        identity_key(CommonSettings(profile="production", var_dir=tmp_path))
    assert not (tmp_path / "keys").exists()  # nothing made up on the spot
    assert identity_key(CommonSettings(profile="production", identity_key="s3cret")) == b"s3cret"


def test_embedded_identity_key_is_one_0600_file_shared_by_every_caller(tmp_path):
    settings = CommonSettings(var_dir=tmp_path)
    first = identity_hasher(settings)(CLEAR)
    key_file = tmp_path / "keys" / "identity.key"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600
    assert identity_hasher(CommonSettings(var_dir=tmp_path))(CLEAR.lower()) == first
    assert keyed_id_hasher(key_file.read_bytes().strip())(CLEAR) == first


def test_event_form_masks_every_number_keeps_birth_date_and_adds_the_hash():
    hasher = keyed_id_hasher(b"k")
    data = {"household": {"members": [{"id_number": CLEAR, "birth_date": "1978-03-15"},
                                      {"id_number": None, "birth_date": "1980-01-20"}]},
            "move": {"person": {"id_number": CLEAR}}}
    form = event_form(data, hasher)
    member = form["household"]["members"][0]
    assert member == {"id_number": "360782********0018", "id_number_hash": hasher(CLEAR), "birth_date": "1978-03-15"}
    assert form["household"]["members"][1] == {"id_number": None, "birth_date": "1980-01-20"}
    assert form["move"]["person"]["id_number_hash"] == hasher(CLEAR)
    assert CLEAR not in repr(form)
    assert event_form(form, hasher) == form  # a second pass (replay, re-publish) changes nothing


def test_masked_member_gives_birth_year_instead_of_birth_date_and_no_hash():
    member = {"id": "p1", "id_number": CLEAR, "id_number_hash": "ab" * 32, "birth_date": "1978-03-15", "name": "钟大山"}
    assert masked_member(member) == {"id": "p1", "id_number": "360782********0018", "birth_year": 1978,
                                     "name": "钟大山"}
    assert masked_member({"id": "p2", "id_number": None}) == {"id": "p2", "id_number": None}
    household = masked_snapshot({"id": "h", "members": [member]})
    assert household["members"][0]["birth_year"] == 1978 and "birth_date" not in household["members"][0]


def test_private_output_files_are_0600_even_over_a_wider_existing_file(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("old")
    path.chmod(0o644)
    private_output_file(path).write_text("new")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and path.read_text() == "new"


def test_sqlite_database_and_its_wal_files_are_0600(tmp_path):
    from sqlalchemy import text

    from shared.db import make_engine

    async def run():
        engine = make_engine(f"sqlite+aiosqlite:///{tmp_path / 'db' / 'registry.db'}")
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (x TEXT)"))
            await conn.execute(text("INSERT INTO t VALUES ('360782197803150018')"))
            files = sorted(p.name for p in (tmp_path / "db").iterdir())
            modes = {p.name: stat.S_IMODE(os.stat(p).st_mode) for p in (tmp_path / "db").iterdir()}
        await engine.dispose()
        return files, modes

    old_umask = os.umask(0o022)  # the usual umask: SQLite alone would create 0644 files
    try:
        files, modes = asyncio.run(run())
    finally:
        os.umask(old_umask)
    assert "registry.db" in files and "registry.db-wal" in files, files
    assert set(modes.values()) == {0o600}, modes
