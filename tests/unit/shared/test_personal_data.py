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
