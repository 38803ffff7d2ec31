"""Verify hashes a record's data as stored: the stored text is canonical JSON, and the bytes built around it
are exactly the canonical bytes of the record (and of what its signature covers); no column change, nor a
stored text that tries to absorb one, gives the same bytes."""
from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from services.audit.ledger.chain import (GENESIS_HASH, ChainVerifier, canonical_json, canonical_order, hashed_content,
                                         record_hash, stored_hashed_bytes, stored_signed_bytes)
from shared.db import json_dumps
from shared.signing import ledger_signed_bytes

# Text that looks like the JSON around it: quotes, colons, commas, braces, backslashes, separators.
tricky_text = st.text(alphabet=st.sampled_from(list('ab"\\:,{}[] \u2028\u0001村\U0001f600')), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | tricky_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(tricky_text, inner, max_size=4), max_leaves=20)
records = st.fixed_dictionaries({
    "chain_id": tricky_text, "seq": st.integers(1, 10**12), "event_id": tricky_text, "source": tricky_text,
    "type": tricky_text, "subject": tricky_text, "time": tricky_text, "actor": st.none() | tricky_text,
    "signer": st.none() | tricky_text, "signature": st.none() | tricky_text, "data": json_values})


@given(json_values)
@settings(max_examples=300, deadline=None)
def test_the_stored_text_is_the_canonical_json(value):
    # what append_records hands the JSON column, written by the shared serializer
    assert json_dumps(canonical_order(value)) == canonical_json(value).decode("utf-8")


@given(records)
@settings(max_examples=300, deadline=None)
def test_bytes_built_around_the_stored_text_are_the_canonical_bytes(record):
    stored = canonical_json(record["data"]).decode("utf-8")
    assert stored_hashed_bytes(record, stored) == canonical_json(hashed_content(record))
    assert stored_signed_bytes(record, stored) == ledger_signed_bytes(record)


def _chain(n: int) -> list[dict]:
    out, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        record = {"id": seq, "chain_id": "c", "seq": seq, "event_id": f"e{seq}", "source": "registry",
                  "type": "household.updated", "subject": "household/h", "time": "2020-01-01T00:00:00Z",
                  "actor": "a", "signer": "registry-k", "signature": "sig",
                  "data": {"z": 1, "a": {"名": "新村", "q": 'say "x"'}}, "prev_hash": prev}
        record["hash"] = prev = record_hash(prev, record)
        out.append(record)
    return out


def _as_stored(record: dict, text: str | None = None) -> dict:
    stored = {k: v for k, v in record.items() if k != "data"}
    stored["data_json"] = text if text is not None else canonical_json(record["data"]).decode()
    return stored


def test_a_record_read_as_stored_verifies_and_any_change_is_found():
    good = _chain(3)
    verifier = ChainVerifier("c")
    assert all(verifier.feed(_as_stored(r)) for r in good)
    cases = {
        "data": lambda r: _as_stored(r, canonical_json({**r["data"], "z": 2}).decode()),
        "actor": lambda r: {**_as_stored(r), "actor": "b"},
        "no actor": lambda r: {**_as_stored(r), "actor": None},
        "signer": lambda r: {**_as_stored(r), "signer": "registry-j"},
        "no signature": lambda r: {**_as_stored(r), "signature": None},
        "time": lambda r: {**_as_stored(r), "time": "2020-01-02T00:00:00Z"},
        # the stored text takes the next field in, and the field gives it up: other bytes all the same
        "shifted event_id": lambda r: {**_as_stored(r, canonical_json(r["data"]).decode() + ',"event_id":"e2"'),
                                       "event_id": "x"},
        "not JSON": lambda r: _as_stored(r, "{"),
    }
    for name, change in cases.items():
        records = _chain(3)
        verifier = ChainVerifier("c")
        fed = [verifier.feed(change(r) if r["seq"] == 2 else _as_stored(r)) for r in records]
        assert fed == [True, False, False], name
        assert verifier.first_bad["seq"] == 2 and "altered" in verifier.first_bad["reason"], name


def test_a_text_not_canonical_is_decoded_and_judged_as_before():
    # A record stored before the ledger kept canonical text: same content, other bytes.
    records = _chain(2)
    verifier = ChainVerifier("c")
    assert verifier.feed(_as_stored(records[0], json.dumps(records[0]["data"])))  # spaces, insertion order
    assert verifier.feed(_as_stored(records[1]))
    assert verifier.checked == 2 and verifier.first_bad is None
