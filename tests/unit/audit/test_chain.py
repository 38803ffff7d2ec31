"""Pure ledger pieces: canonical JSON, SHA-256 / SM3 hashes, the verifier, Merkle roots, masking,
and the sample allocation."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from services.audit.ledger.chain import (GENESIS_HASH, ChainVerifier, canonical_json, digest, heads_merkle_root,
                                         keyed_id_hasher, mask_personal_data, merkle_root, record_hash)
from services.audit.supervision.sample import allocate


def chain(n: int, algorithm: str = "sha256") -> list[dict]:
    records, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        record = {"id": seq, "chain_id": "c", "seq": seq, "event_id": f"e{seq}", "source": "registry",
                  "type": "household.updated", "subject": "household/h", "time": "2020-01-01T00:00:00Z",
                  "actor": "a", "data": {"n": seq, "名": "新村"}, "prev_hash": prev}
        record["hash"] = prev = record_hash(prev, record, algorithm)
        records.append(record)
    return records


def test_canonical_json_is_key_order_independent_and_utf8():
    assert canonical_json({"b": 1, "a": "村"}) == canonical_json({"a": "村", "b": 1}) == '{"a":"村","b":1}'.encode()


def test_sm3_matches_the_standard_test_vector():
    # GB/T 32905-2016 example 1: SM3("abc")
    assert digest(b"abc", "sm3") == "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    assert digest(b"abc", "sha256") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_verifier_accepts_a_good_chain_in_both_algorithms():
    for algorithm in ("sha256", "sm3"):
        verifier = ChainVerifier("c", algorithm)
        assert all(verifier.feed(r) for r in chain(5, algorithm)) and verifier.checked == 5


@given(st.integers(min_value=0, max_value=5), st.sampled_from(["data", "actor", "hash", "prev_hash", "time"]))
@settings(max_examples=60, deadline=None)
def test_any_change_to_any_record_is_located(index, field):
    records = chain(6)
    victim = records[index]
    victim[field] = {"changed": True} if field == "data" else "f" * 64 if "hash" in field else "x"
    verifier = ChainVerifier("c")
    for r in records:
        if not verifier.feed(r):
            break
    assert verifier.first_bad is not None and verifier.first_bad["seq"] == victim["seq"]


def test_missing_and_swapped_records_are_detected():
    records = chain(5)
    verifier = ChainVerifier("c")
    assert [verifier.feed(r) for r in records[:2] + records[3:]][2] is False
    assert "missing" in verifier.first_bad["reason"]
    swapped = chain(5)
    swapped[1]["seq"], swapped[2]["seq"] = 3, 2
    swapped[1], swapped[2] = swapped[2], swapped[1]
    verifier = ChainVerifier("c")
    for r in swapped:
        if not verifier.feed(r):
            break
    assert verifier.first_bad["seq"] == 2


@given(st.lists(st.text(alphabet="0123456789abcdef", min_size=64, max_size=64), min_size=1, max_size=9, unique=True),
       st.data())
@settings(max_examples=50, deadline=None)
def test_merkle_root_commits_to_every_leaf(leaves, data):
    root = merkle_root(leaves)
    i = data.draw(st.integers(0, len(leaves) - 1))
    changed = list(leaves)
    changed[i] = "0" * 64 if changed[i] != "0" * 64 else "1" * 64
    assert merkle_root(changed) != root
    if len(leaves) > 1:
        assert merkle_root(list(reversed(leaves))) != root or leaves == list(reversed(leaves))


def test_heads_root_depends_on_seq_and_hash():
    heads = {"a:0": {"seq": 3, "hash": "1" * 64}, "b:0": {"seq": 1, "hash": "2" * 64}}
    assert heads_merkle_root(heads) != heads_merkle_root({**heads, "a:0": {"seq": 2, "hash": "1" * 64}})
    assert heads_merkle_root({}) == GENESIS_HASH


def test_masking_keeps_only_a_keyed_hash():
    hasher = keyed_id_hasher(b"k")
    number = "360782197803150018"
    masked = mask_personal_data({"members": [{"id_number": number}], "note": "x"}, hasher)
    member = masked["members"][0]
    assert member["id_number"] == "360782********0018" and member["id_number_hash"] == hasher(number)
    assert number not in str(masked)
    assert keyed_id_hasher(b"other")(number) != hasher(number)
    assert "id_number_hash" not in mask_personal_data({"id_number": "360782********0018"}, hasher)


@given(st.dictionaries(st.text(min_size=1, max_size=3), st.integers(0, 40), max_size=8), st.integers(1, 120))
@settings(max_examples=200, deadline=None)
def test_allocation_is_proportional_with_one_per_stratum(sizes, n):
    alloc = allocate(sizes, n)
    nonempty = {k: v for k, v in sizes.items() if v > 0}
    assert set(alloc) == set(nonempty)
    assert all(1 <= alloc[k] <= nonempty[k] for k in alloc)
    if nonempty:
        total = sum(nonempty.values())
        assert sum(alloc.values()) == min(max(n, len(nonempty)), total)
        for k in alloc:  # never further than one unit from the exact quota, beyond the minimum of one
            quota = min(max(n, len(nonempty)), total) * nonempty[k] / total
            assert alloc[k] <= max(1, quota + 1 + len(nonempty))
