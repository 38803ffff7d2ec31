"""Event signatures: canonical bytes, sign/verify, key ids, keyrings, production settings."""
from __future__ import annotations

import base64
import json
import os
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit.ledger.service import envelope_record
from shared.config import AuditSettings, BenefitsSettings, RegistrySettings
from shared.events import Envelope
from shared.signing import (EventSigner, SignatureError, SigningConfigError, TrustedKey, canonical_json,
                            check_event_keys, envelope_signed_bytes, event_signer, key_id, ledger_content,
                            ledger_signed_bytes, load_keyring, parse_public_key, raw_public_bytes, sign_envelope,
                            trusted_keys, verified_envelope, write_keyring)

MEMBER = {"id": "p1", "name": "张三", "id_number": "360782********0014", "id_number_hash": "ab" * 32,
          "birth_date": "1990-01-01"}


def envelope(**overrides) -> Envelope:
    values = dict(source="registry", type="household.updated", subject="household/hh-1", sequence=3,
                  time=datetime(2020, 1, 2, 3, 4, 5, 678901, tzinfo=timezone.utc), actor="office-1",
                  data={"household": {"id": "hh-1", "version": 3, "members": [MEMBER]}, "version": 3})
    values.update(overrides)
    return Envelope(**values)


@pytest.fixture
def registry_signer(tmp_path) -> EventSigner:
    return event_signer(RegistrySettings(var_dir=tmp_path))


@pytest.fixture
def trusted(tmp_path, registry_signer):
    return trusted_keys(AuditSettings(var_dir=tmp_path))


def test_canonical_json_is_sorted_compact_utf8():
    assert canonical_json({"b": [1, {"d": 1, "c": "村"}], "a": None}) == '{"a":null,"b":[1,{"c":"村","d":1}]}'.encode()


def test_key_id_is_source_and_sha256_prefix_of_the_raw_public_key(registry_signer):
    import hashlib
    raw = raw_public_bytes(registry_signer.public_key)
    assert registry_signer.signer == "registry-" + hashlib.sha256(raw).hexdigest()[:12]
    assert key_id("registry", registry_signer.public_key) == registry_signer.signer


def test_embedded_key_file_is_private_and_reused(tmp_path, registry_signer):
    path = tmp_path / "keys" / "registry-events.pem"
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    assert event_signer(RegistrySettings(var_dir=tmp_path)).signer == registry_signer.signer


def test_signed_envelope_verifies_and_both_signatures_are_base64url(registry_signer, trusted):
    signed = sign_envelope(envelope(), registry_signer)
    for value in (signed.signature, signed.ledger_signature):
        assert "=" not in value and "+" not in value and "/" not in value
        assert len(base64.urlsafe_b64decode(value + "==")) == 64
    got = verified_envelope(signed.to_bytes(), trusted, ledger=True)
    assert got.id == signed.id and got.signer == registry_signer.signer


def test_signature_covers_every_field_but_the_signatures(registry_signer):
    signed = sign_envelope(envelope(), registry_signer)
    wire = json.loads(signed.to_bytes())
    covered = json.loads(envelope_signed_bytes(wire))
    assert "signer" in covered and "signature" not in covered and "ledger_signature" not in covered
    assert covered == {k: v for k, v in wire.items() if k not in ("signature", "ledger_signature")}


@pytest.mark.parametrize("change", [
    lambda w: w["data"]["household"].update(version=101),
    lambda w: w.update(source="benefits"),
    lambda w: w.update(subject="household/hh-2"),
    lambda w: w.update(actor="someone"),
    lambda w: w.update(time="2020-01-02T03:04:06Z"),
    lambda w: w.update(extra_field="smuggled"),  # even fields the model ignores are covered
    lambda w: w["data"]["household"]["members"][0].update(birth_date="1990-01-02"),
])
def test_any_change_breaks_the_envelope_signature(registry_signer, trusted, change):
    wire = json.loads(sign_envelope(envelope(), registry_signer).to_bytes())
    change(wire)
    with pytest.raises(SignatureError):
        verified_envelope(json.dumps(wire).encode(), trusted)


def test_ledger_signature_covers_what_the_ledger_keeps_and_not_the_birth_date(registry_signer):
    """Why two signatures: the ledger keeps the birth year only, so it re-checks ledger_signature."""
    signed = sign_envelope(envelope(), registry_signer)
    content = ledger_content(signed)
    member = content["data"]["household"]["members"][0]
    assert "birth_date" not in member and member["birth_year"] == 1990
    assert content["time"] == "2020-01-02T03:04:05.678901Z"
    record = envelope_record(signed, "jz.registry.v1:0")  # what audit stores: the same content
    assert {k: record[k] for k in content} == content and record["signature"] == signed.ledger_signature
    registry_signer.public_key.verify(base64.urlsafe_b64decode(signed.ledger_signature + "=="),
                                      ledger_signed_bytes(record))
    same_year = sign_envelope(envelope(id=signed.id, data={"household": {"id": "hh-1", "version": 3, "members": [
        {**MEMBER, "birth_date": "1990-12-31"}]}, "version": 3}), registry_signer)
    assert ledger_signed_bytes(ledger_content(same_year)) == ledger_signed_bytes(content)


def test_ledger_content_is_the_same_before_and_after_the_wire(registry_signer):
    local_time = datetime(2020, 3, 31, 16, 0, tzinfo=timezone(timedelta(hours=8)))
    signed = sign_envelope(envelope(time=local_time, actor=None), registry_signer)
    received = Envelope.from_bytes(signed.to_bytes())
    assert ledger_content(received) == ledger_content(signed)


def test_altered_ledger_signature_is_refused_when_audit_asks(registry_signer, trusted):
    signed = sign_envelope(envelope(), registry_signer)
    other = sign_envelope(envelope(), registry_signer)
    wire = json.loads(signed.to_bytes())
    wire["ledger_signature"] = other.ledger_signature
    raw = json.dumps(wire).encode()
    assert verified_envelope(raw, trusted).id == signed.id  # benefits acts on the envelope signature
    with pytest.raises(SignatureError, match="ledger_signature"):
        verified_envelope(raw, trusted, ledger=True)


def test_a_key_signs_only_its_own_source(registry_signer):
    with pytest.raises(ValueError, match="may not sign"):
        sign_envelope(envelope(source="benefits"), registry_signer)


def test_unsigned_unknown_and_wrong_source_are_refused(tmp_path, registry_signer, trusted):
    with pytest.raises(SignatureError, match="unsigned"):
        verified_envelope(envelope().to_bytes(), trusted)
    stranger = EventSigner.from_private_key("registry", Ed25519PrivateKey.generate())
    with pytest.raises(SignatureError, match="unknown signer"):
        verified_envelope(sign_envelope(envelope(), stranger).to_bytes(), trusted)
    benefits = event_signer(BenefitsSettings(var_dir=tmp_path))
    forged = sign_envelope(envelope(source="benefits"), benefits)
    wire = json.loads(forged.to_bytes())
    wire["source"] = "registry"
    wire["signature"] = benefits.sign(envelope_signed_bytes(wire))
    with pytest.raises(SignatureError, match="may not sign 'registry'"):
        verified_envelope(json.dumps(wire).encode(), trusted)


def test_a_key_created_after_start_up_is_found(tmp_path, trusted):
    late = event_signer(BenefitsSettings(var_dir=tmp_path))  # benefits starts after audit loaded its keys
    signed = sign_envelope(envelope(source="benefits", type="entitlements.decided"), late)
    assert verified_envelope(signed.to_bytes(), trusted, ledger=True).signer == late.signer


def test_keyring_accepts_pem_and_base64_and_checks_key_ids(tmp_path, registry_signer):
    raw = base64.b64encode(raw_public_bytes(registry_signer.public_key)).decode()
    assert raw_public_bytes(parse_public_key(raw)) == raw_public_bytes(registry_signer.public_key)
    path = tmp_path / "keyring.json"
    write_keyring(path, [TrustedKey(registry_signer.signer, "registry", registry_signer.public_key, retired=True)])
    [key] = load_keyring(path)
    assert key.retired and key.source == "registry"
    path.write_text(json.dumps({"keys": [{"signer": registry_signer.signer, "source": "registry",
                                          "public_key": raw}]}))
    assert load_keyring(path)[0].signer == registry_signer.signer
    path.write_text(json.dumps({"keys": [{"signer": registry_signer.signer, "source": "benefits",
                                          "public_key": raw}]}))
    with pytest.raises(SigningConfigError, match="JZ_EVENT_TRUSTED_KEYS_FILE"):
        load_keyring(path)


def test_production_needs_the_key_file_and_the_keyring(tmp_path):
    with pytest.raises(SigningConfigError, match="JZ_REGISTRY_EVENT_SIGNING_KEY_FILE"):
        check_event_keys(RegistrySettings(profile="production", var_dir=tmp_path))
    key_file = tmp_path / "benefits.pem"
    with pytest.raises(SigningConfigError, match="JZ_BENEFITS_EVENT_SIGNING_KEY_FILE"):
        check_event_keys(BenefitsSettings(profile="production", var_dir=tmp_path, event_signing_key_file=key_file))
    from shared.signing import new_private_key_pem
    key_file.write_bytes(new_private_key_pem())
    with pytest.raises(SigningConfigError, match="JZ_EVENT_TRUSTED_KEYS_FILE"):
        check_event_keys(BenefitsSettings(profile="production", var_dir=tmp_path, event_signing_key_file=key_file))
    registry_key = tmp_path / "registry.pem"
    registry_key.write_bytes(new_private_key_pem())
    # the registry verifies benefits' monitoring events: it needs the keyring too, unless that consumer is off
    with pytest.raises(SigningConfigError, match="JZ_EVENT_TRUSTED_KEYS_FILE"):
        check_event_keys(RegistrySettings(profile="production", var_dir=tmp_path, event_signing_key_file=registry_key))
    signer = check_event_keys(RegistrySettings(profile="production", var_dir=tmp_path,
                                               event_signing_key_file=registry_key, monitoring_consumer=False))
    assert signer.signer.startswith("registry-")
    assert not (tmp_path / "keys").exists()  # production never makes up a key under var/


def test_deployment_keys_init_is_idempotent_and_rotation_retires_the_old_key(tmp_path):
    from shared.signing import init_deployment_keys
    keys_dir, keyring = tmp_path / "keys", tmp_path / "keyring" / "keyring.json"
    first = {k.signer for k in init_deployment_keys(keys_dir, keyring, ["registry", "benefits"])}
    assert {k.signer for k in init_deployment_keys(keys_dir, keyring, ["registry", "benefits"])} == first
    assert oct(os.stat(keys_dir / "registry" / "events.pem").st_mode & 0o777) == "0o600"
    rotated = init_deployment_keys(keys_dir, keyring, ["registry", "benefits"], rotate=["registry"])
    by_state = {(k.source, k.retired) for k in rotated}
    assert by_state == {("registry", False), ("registry", True), ("benefits", False)}
    old_registry = next(k.signer for k in rotated if k.retired)
    assert old_registry in first
    settings = BenefitsSettings(profile="production", var_dir=tmp_path, event_trusted_keys_file=keyring,
                                event_signing_key_file=keys_dir / "benefits" / "events.pem")
    check_event_keys(settings)
    assert trusted_keys(settings).get(old_registry).retired


def test_production_refusals_name_the_event_key_settings(tmp_path):
    from shared.config import production_refusals
    reasons = " ".join(production_refusals(AuditSettings(profile="production", var_dir=tmp_path)))
    assert "JZ_AUDIT_EVENT_SIGNING_KEY_FILE" in reasons and "JZ_EVENT_TRUSTED_KEYS_FILE" in reasons
    registry = " ".join(production_refusals(RegistrySettings(profile="production", var_dir=tmp_path)))
    assert "JZ_REGISTRY_EVENT_SIGNING_KEY_FILE" in registry and "JZ_EVENT_TRUSTED_KEYS_FILE" in registry
    publisher_only = " ".join(production_refusals(RegistrySettings(profile="production", var_dir=tmp_path,
                                                                   monitoring_consumer=False)))
    assert "JZ_REGISTRY_EVENT_SIGNING_KEY_FILE" in publisher_only and "JZ_EVENT_TRUSTED_KEYS_FILE" not in publisher_only
    assert not [r for r in production_refusals(RegistrySettings(var_dir=tmp_path)) if "EVENT" in r]
