"""Events signed at the source: Ed25519 keys per service, trusted keys per source, canonical bytes.

Every envelope a service stages carries two signatures by that service's key (``signer`` is the key id):

* ``signature`` over the canonical JSON of the envelope without its two signatures: consumers check it
  before they act, so a message written straight to a topic by anyone without the key is dead-lettered;
* ``ledger_signature`` over the canonical JSON of the *ledger content* (``ledger_content``): exactly what
  the audit ledger stores of the event (``shared.personal_data.ledger_form`` of the data, birth year and
  no clear number). Audit cannot keep the exact birth date, so it could never re-check ``signature``
  later; it keeps ``ledger_signature`` with the record and ``GET /v1/audit/verify`` re-checks the origin
  of every stored record with it. Source and audit build that content with the same function.

A key verifies only envelopes whose ``source`` is the key's source (the registry's key cannot vouch for
a benefits decision). Several keys per source may be trusted at once (rotation); a retired key no
longer signs but still verifies what it signed.

Embedded profile: each service's key is ``var/keys/<service>-events.pem`` (created 0600 on first use);
the trusted keys are the public halves of every such file, the retired public keys kept under
``var/keys/retired/`` by ``rotate_event_key``, and any configured keyring. Production: the service's key
file is a setting (``JZ_<SERVICE>_EVENT_SIGNING_KEY_FILE``) and the keyring (``JZ_EVENT_TRUSTED_KEYS_FILE``,
JSON ``{"keys": [{"signer", "source", "public_key", "retired"}]}``) is required by every service that
verifies; a missing one is a start-up error naming the setting.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from shared.personal_data import ledger_form, write_private_file

KEYS_DIR = "keys"
EVENT_KEY_SUFFIX = "-events.pem"
RETIRED_DIR = "retired"
TRUSTED_KEYS_ENV = "JZ_EVENT_TRUSTED_KEYS_FILE"
#: Services that consume events and therefore need the trusted keyring. The registry verifies too when it
#: consumes benefits' ``monitoring.risk_detected`` (its monitoring consumer, on unless switched off).
VERIFYING_SERVICES = ("benefits", "audit")


def verifies_events(settings: Any) -> bool:
    name = getattr(settings, "service_name", "")
    if name in VERIFYING_SERVICES:
        return True
    return name == "registry" and bool(getattr(settings, "monitoring_consumer", False)) \
        and bool(getattr(settings, "run_consumer", True))
#: What ``ledger_signature`` covers, in the ledger's own field names.
LEDGER_SIGNED_FIELDS = ("event_id", "source", "type", "subject", "time", "actor", "signer", "data")
SIGNATURE_FIELDS = ("signature", "ledger_signature")


class SigningConfigError(RuntimeError):
    """A key or keyring that production needs is not configured; the message names the setting."""


class SignatureError(ValueError):
    """An event or record whose origin cannot be established; the message says why."""


# ---------------------------------------------------------------- canonical bytes


def canonical_json(value: Any) -> bytes:
    """Sorted keys, UTF-8, no spaces: the bytes hashes and signatures are computed over."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def rfc3339(value: datetime) -> str:
    """Event time exactly as the ledger writes it (``Z`` for UTC)."""
    return value.isoformat().replace("+00:00", "Z")


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def envelope_signed_bytes(wire: dict) -> bytes:
    """What ``signature`` covers: the envelope's JSON dict without its two signatures (with ``signer``)."""
    return canonical_json({key: value for key, value in wire.items() if key not in SIGNATURE_FIELDS})


def ledger_content(envelope) -> dict:
    """The ledger content of an event: what audit stores of it and what ``ledger_signature`` covers.

    The one definition both ends use: the source signs it when staging, audit's ``envelope_record``
    stores it, so the two agree by construction.
    """
    wire = envelope.model_dump(mode="json")
    return {"event_id": envelope.id, "source": envelope.source, "type": envelope.type,
            "subject": envelope.subject, "time": rfc3339(envelope.time), "actor": envelope.actor,
            "signer": envelope.signer, "data": ledger_form(wire["data"])}


def ledger_signed_bytes(record: dict) -> bytes:
    """``ledger_signature``'s bytes from a ledger record (or ``ledger_content``)."""
    return canonical_json({field: record.get(field) for field in LEDGER_SIGNED_FIELDS})


# ---------------------------------------------------------------- keys


def raw_public_bytes(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(source: str, public_key: Ed25519PublicKey) -> str:
    """``<source>-<first 12 hex of sha256(raw public key)>``: says whose key it is and which one."""
    return f"{source}-{hashlib.sha256(raw_public_bytes(public_key)).hexdigest()[:12]}"


def source_of_key_id(signer: str) -> str:
    return signer.rsplit("-", 1)[0]


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def parse_public_key(text: str) -> Ed25519PublicKey:
    """A public key given as PEM or as base64 (standard or URL-safe) of the 32 raw bytes."""
    text = text.strip()
    if text.startswith("-----BEGIN"):
        key = serialization.load_pem_public_key(text.encode("ascii"))
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError("not an Ed25519 public key")
        return key
    try:
        raw = b64url_decode(text.replace("+", "-").replace("/", "_").rstrip("="))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("public_key is neither PEM nor base64") from exc
    return Ed25519PublicKey.from_public_bytes(raw)


def new_private_key_pem() -> bytes:
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningConfigError(f"{path} is not an Ed25519 private key")
    return key


@dataclass(frozen=True)
class EventSigner:
    """One service's signing key."""

    source: str
    signer: str
    private_key: Ed25519PrivateKey

    @classmethod
    def from_private_key(cls, source: str, private_key: Ed25519PrivateKey) -> "EventSigner":
        return cls(source, key_id(source, private_key.public_key()), private_key)

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def sign(self, payload: bytes) -> str:
        return b64url(self.private_key.sign(payload))


def embedded_key_file(var_dir: Path | str, service: str) -> Path:
    return Path(var_dir) / KEYS_DIR / f"{service}{EVENT_KEY_SUFFIX}"


def _setting_env_name(settings: Any, field: str) -> str:
    prefix = (getattr(settings, "model_config", {}) or {}).get("env_prefix", "JZ_")
    return f"{prefix}{field.upper()}"


def signing_key_file(settings: Any) -> Path:
    """Where the service's private key is: the setting, else (embedded only) under ``var/keys``."""
    configured = getattr(settings, "event_signing_key_file", None)
    if configured:
        return Path(configured)
    if getattr(settings, "profile", "embedded") == "production":
        name = _setting_env_name(settings, "event_signing_key_file")
        raise SigningConfigError(f"{name} must be set in the production profile: it names the file with this "
                                 f"service's Ed25519 event signing key (PEM, PKCS#8)")
    return embedded_key_file(getattr(settings, "var_dir", "var"), settings.service_name)


_signer_cache: dict[tuple, EventSigner] = {}
_lock = threading.Lock()


def event_signer(settings: Any) -> EventSigner:
    """The service's signer (created on first use in the embedded profile; cached per key file)."""
    path = signing_key_file(settings)
    if not path.exists():
        if getattr(settings, "event_signing_key_file", None):
            raise SigningConfigError(f"{_setting_env_name(settings, 'event_signing_key_file')}: {path} does not exist")
        write_private_file(path, new_private_key_pem())
    stat = path.stat()
    cache_key = (str(path.resolve()), stat.st_mtime_ns, stat.st_ino, settings.service_name)
    with _lock:
        found = _signer_cache.get(cache_key)
        if found is None:
            found = _signer_cache[cache_key] = EventSigner.from_private_key(settings.service_name,
                                                                            load_private_key(path))
        return found


def rotate_event_key(settings: Any) -> tuple[str, str]:
    """Embedded profile: retire the service's key (its public half stays trusted under
    ``var/keys/retired/``, the private half is destroyed) and create a new one. Returns (old, new) key ids.

    Production rotates by configuration: a new key file in the setting and the old key marked
    ``"retired": true`` in the keyring.
    """
    if getattr(settings, "event_signing_key_file", None) or getattr(settings, "profile", "") == "production":
        raise SigningConfigError("rotate_event_key manages embedded keys only; in production configure a new key "
                                 "file and mark the old key retired in the keyring")
    old = event_signer(settings)
    retired = Path(settings.var_dir) / KEYS_DIR / RETIRED_DIR / f"{old.signer}.pub.pem"
    retired.parent.mkdir(parents=True, exist_ok=True)
    retired.write_text(public_key_pem(old.public_key), encoding="ascii")
    path = signing_key_file(settings)
    path.unlink()
    return old.signer, event_signer(settings).signer


# ---------------------------------------------------------------- trusted keys


@dataclass(frozen=True)
class TrustedKey:
    signer: str
    source: str
    public_key: Ed25519PublicKey
    retired: bool = False


def keyring_entry(key: TrustedKey) -> dict:
    return {"signer": key.signer, "source": key.source, "public_key": public_key_pem(key.public_key),
            "retired": key.retired}


def write_keyring(path: Path, keys: Iterable[TrustedKey]) -> None:
    Path(path).write_text(json.dumps({"keys": [keyring_entry(k) for k in keys]}, indent=2), encoding="utf-8")


def load_keyring(path: Path) -> list[TrustedKey]:
    try:
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SigningConfigError(f"{TRUSTED_KEYS_ENV}: cannot read keyring {path}: {exc}") from exc
    keys = []
    for index, entry in enumerate(document.get("keys") or []):
        try:
            public_key = parse_public_key(entry["public_key"])
            source, signer = entry["source"], entry["signer"]
        except (KeyError, TypeError, ValueError) as exc:
            raise SigningConfigError(f"{TRUSTED_KEYS_ENV}: key {index} of {path} is invalid: {exc}") from exc
        if key_id(source, public_key) != signer:
            # The key id is derived from the key: a mismatch is a typo or a key filed under another source.
            raise SigningConfigError(f"{TRUSTED_KEYS_ENV}: key {index} of {path}: signer {signer!r} is not "
                                     f"{key_id(source, public_key)!r}, the id of that key for source {source!r}")
        keys.append(TrustedKey(signer, source, public_key, bool(entry.get("retired", False))))
    return keys


def _embedded_keys(var_dir: Path) -> list[TrustedKey]:
    keys_dir = var_dir / KEYS_DIR
    keys = []
    for path in sorted(keys_dir.glob(f"*{EVENT_KEY_SUFFIX}")):
        source = path.name[:-len(EVENT_KEY_SUFFIX)]
        try:
            public_key = load_private_key(path).public_key()
        except (ValueError, OSError, SigningConfigError):
            continue  # half-written by a concurrent first start; picked up on the next refresh
        keys.append(TrustedKey(key_id(source, public_key), source, public_key))
    for path in sorted((keys_dir / RETIRED_DIR).glob("*.pub.pem")):
        signer = path.name[:-len(".pub.pem")]
        public_key = parse_public_key(path.read_text(encoding="ascii"))
        source = source_of_key_id(signer)
        if key_id(source, public_key) == signer:
            keys.append(TrustedKey(signer, source, public_key, retired=True))
    return keys


class TrustedKeys:
    """The verification keys a service trusts, loaded once and cached.

    A signer it does not know makes it look again (when the key directory or keyring file changed
    since it last looked), so a key created by another service after start-up is found, and a
    stream of forged signers costs one ``stat`` each. Known keys are re-checked against the files at
    most once per ``recheck_s``, so a key removed from the keyring stops verifying within that time.
    """

    recheck_s = 1.0

    def __init__(self, settings: Any) -> None:
        self.profile = getattr(settings, "profile", "embedded")
        self.keyring_file = getattr(settings, "event_trusted_keys_file", None)
        self.var_dir = Path(getattr(settings, "var_dir", "var"))
        self.own_signer: EventSigner | None = None
        if self.profile == "production" and not self.keyring_file:
            raise SigningConfigError(f"{TRUSTED_KEYS_ENV} must be set in the production profile: it lists the "
                                     "public keys this service trusts to sign events (per source, with retired "
                                     "keys kept for old records)")
        self._keys: dict[str, TrustedKey] = {}
        self._seen_state: tuple | None = None
        self._checked_at = 0.0
        self._lock = threading.Lock()
        self.refresh(force=True)

    def _state(self) -> tuple:
        def stamp(path: Path) -> tuple:
            try:
                st = path.stat()
                return st.st_mtime_ns, st.st_ino, st.st_size
            except OSError:
                return ()
        parts = [stamp(Path(self.keyring_file))] if self.keyring_file else []
        if self.profile != "production":
            parts += [stamp(self.var_dir / KEYS_DIR), stamp(self.var_dir / KEYS_DIR / RETIRED_DIR)]
        return tuple(parts)

    def refresh(self, force: bool = False) -> bool:
        """Reload if anything changed; True when it did."""
        self._checked_at = time.monotonic()
        state = self._state()
        with self._lock:
            if not force and state == self._seen_state:
                return False
            keys: dict[str, TrustedKey] = {}
            if self.profile != "production":
                keys.update((k.signer, k) for k in _embedded_keys(self.var_dir))
            if self.keyring_file:
                keys.update((k.signer, k) for k in load_keyring(Path(self.keyring_file)))
            if self.own_signer is not None:
                keys.setdefault(self.own_signer.signer, TrustedKey(self.own_signer.signer, self.own_signer.source,
                                                                   self.own_signer.public_key))
            self._keys, self._seen_state = keys, state
            return True

    def trust_own(self, signer: EventSigner) -> None:
        """A service always trusts its own current key (audit re-checks its own checkpoints)."""
        self.own_signer = signer
        self.add(TrustedKey(signer.signer, signer.source, signer.public_key))

    def add(self, key: TrustedKey) -> None:
        """Trust one more key (tools and benchmarks; services read theirs from the key files)."""
        with self._lock:
            self._keys.setdefault(key.signer, key)

    def get(self, signer: str) -> TrustedKey | None:
        if time.monotonic() - self._checked_at > self.recheck_s:
            self.refresh()
        key = self._keys.get(signer)
        if key is None and self.refresh():
            key = self._keys.get(signer)
        return key

    def keys(self) -> list[TrustedKey]:
        return list(self._keys.values())

    def refusal(self, source: Any, signer: Any, signature: Any) -> str | None:
        """Why a signature by ``signer`` could not establish that ``source`` sent anything, before looking at
        the bytes (unsigned, malformed, an unknown key, another source's key); None when it could."""
        if not signature or not signer:
            return "unsigned: no signature or no signer"
        if not isinstance(signer, str) or not isinstance(signature, str):
            return "malformed signature or signer"
        key = self.get(signer)
        if key is None:
            return f"unknown signer {signer!r}: not a trusted key"
        if key.source != source:
            return f"signer {signer!r} is a key of {key.source!r} and may not sign {source!r} events"
        return None

    def problem(self, source: Any, signer: Any, payload: bytes, signature: Any) -> str | None:
        """Why ``signature`` does not establish that ``source`` sent ``payload``; None when it does."""
        refused = self.refusal(source, signer, signature)
        if refused is not None:
            return refused
        key = self.get(signer)
        try:
            key.public_key.verify(b64url_decode(signature), payload)
        except (InvalidSignature, binascii.Error, ValueError):
            return f"bad signature by {signer!r}: content altered or signed by another key"
        return None


_trusted_cache: dict[tuple, TrustedKeys] = {}


def trusted_keys(settings: Any) -> TrustedKeys:
    """The trusted keys for these settings, one loader per configuration."""
    cache_key = (getattr(settings, "profile", "embedded"), str(getattr(settings, "event_trusted_keys_file", None)),
                 str(Path(getattr(settings, "var_dir", "var")).resolve()))
    with _lock:
        found = _trusted_cache.get(cache_key)
    if found is None:
        found = TrustedKeys(settings)
        with _lock:
            found = _trusted_cache.setdefault(cache_key, found)
    return found


# ---------------------------------------------------------------- envelopes


def sign_envelope(envelope, signer: EventSigner):
    """Set ``signer``, ``signature`` and ``ledger_signature`` on the envelope (in place; returned)."""
    if envelope.source != signer.source:
        raise ValueError(f"the {signer.source} key may not sign a {envelope.source!r} event")
    envelope.signer, envelope.signature, envelope.ledger_signature = signer.signer, None, None
    wire = json.loads(envelope.to_bytes())  # exactly what travels, so both ends see the same values
    signature = signer.sign(envelope_signed_bytes(wire))
    # The ledger content from the envelope as a consumer parses it off the wire.
    received = type(envelope).model_validate(wire)
    envelope.ledger_signature = signer.sign(ledger_signed_bytes(ledger_content(received)))
    envelope.signature = signature
    return envelope


def verified_envelope(raw: bytes, trusted: TrustedKeys, *, ledger: bool = False):
    """Parse an event and check its origin; ``SignatureError`` says why it cannot be trusted.

    Parsing errors stay ``ValueError``/``ValidationError`` (the caller reports them as unparsable).
    ``ledger=True`` also checks ``ledger_signature`` (audit keeps it and re-checks it later).
    """
    from shared.events import Envelope

    wire = json.loads(raw)
    envelope = Envelope.model_validate(wire)
    if not isinstance(wire, dict):  # pragma: no cover - model_validate refuses non-objects
        raise ValueError("an event must be a JSON object")
    problem = trusted.problem(wire.get("source"), wire.get("signer"), envelope_signed_bytes(wire),
                              wire.get("signature"))
    if problem is None and ledger:
        problem = trusted.problem(envelope.source, envelope.signer, ledger_signed_bytes(ledger_content(envelope)),
                                  envelope.ledger_signature)
        if problem:
            problem = f"ledger_signature: {problem}"
    if problem:
        raise SignatureError(f"event {wire.get('id')!r} from {wire.get('source')!r} rejected: {problem}")
    return envelope


# ---------------------------------------------------------------- the signer of a database session

# Each service binds its signer to its engine at start-up, so code that stages events in that
# service's database signs with that service's key without passing it around.
_engine_signers: "weakref.WeakKeyDictionary[Any, EventSigner]" = weakref.WeakKeyDictionary()


def _sync_engine(bind: Any) -> Any:
    return getattr(bind, "sync_engine", bind)


def bind_signer(engine: Any, signer: EventSigner) -> None:
    _engine_signers[_sync_engine(engine)] = signer


def signer_for(session: Any, source: str) -> EventSigner:
    """The signer bound to the session's engine; else the configured key of ``source`` (CLI, scripts)."""
    bind = getattr(session, "bind", None)
    if bind is not None:
        found = _engine_signers.get(_sync_engine(bind))
        if found is not None and found.source == source:
            return found
    from shared.config import SETTINGS_CLASSES, current_settings
    if source not in SETTINGS_CLASSES:
        raise SigningConfigError(f"no signing key for source {source!r}")
    return event_signer(current_settings(source))


def event_key_refusals(settings: Any) -> list[str]:
    """Why a production service could not sign or verify events (empty: fine, or not production).
    Part of ``shared.config.production_refusals``, so the app and the launcher say it before starting."""
    if getattr(settings, "profile", "embedded") != "production" or not getattr(settings, "service_name", ""):
        return []
    reasons = []
    key_setting = _setting_env_name(settings, "event_signing_key_file")
    key_file = getattr(settings, "event_signing_key_file", None)
    if not key_file:
        reasons.append(f"{key_setting} must name this service's Ed25519 event signing key (PEM, PKCS#8)")
    elif not Path(key_file).is_file():
        reasons.append(f"{key_setting}={key_file} does not exist")
    if verifies_events(settings):
        keyring = getattr(settings, "event_trusted_keys_file", None)
        if not keyring:
            reasons.append(f"{TRUSTED_KEYS_ENV} must name the keyring of trusted event-signing public keys")
        elif not Path(keyring).is_file():
            reasons.append(f"{TRUSTED_KEYS_ENV}={keyring} does not exist")
    return reasons


def check_event_keys(settings: Any) -> EventSigner:
    """Start-up check: the service's signing key (and, for consumers, the keyring) are usable.
    Raises ``SigningConfigError`` naming the missing setting."""
    signer = event_signer(settings)
    if verifies_events(settings):
        trusted_keys(settings).trust_own(signer)
    return signer


def reset_caches() -> None:
    """Forget loaded keys (tests that rotate keys in place)."""
    with _lock:
        _signer_cache.clear()
        _trusted_cache.clear()



# ---------------------------------------------------------------- deployment key set-up


def init_deployment_keys(keys_dir: Path, keyring_file: Path, services: Iterable[str],
                         rotate: Iterable[str] = ()) -> list[TrustedKey]:
    """Production key set-up (the compose ``event-keys`` job, or by hand): ``<keys_dir>/<service>/events.pem``
    for each service (0600, created if missing; replaced for the services in ``rotate``) and a keyring
    listing every current key plus, marked retired, every key the old keyring listed that is no
    longer current (so old ledger records keep verifying). Idempotent."""
    rotate = set(rotate)
    current: dict[str, TrustedKey] = {}
    for service in services:
        path = Path(keys_dir) / service / "events.pem"
        if service in rotate and path.exists():
            path.unlink()
        if not path.exists():
            write_private_file(path, new_private_key_pem())
        public_key = load_private_key(path).public_key()
        current[service] = TrustedKey(key_id(service, public_key), service, public_key)
    keys = {key.signer: key for key in current.values()}
    if Path(keyring_file).exists():
        for old in load_keyring(Path(keyring_file)):
            keys.setdefault(old.signer, TrustedKey(old.signer, old.source, old.public_key, retired=True))
    Path(keyring_file).parent.mkdir(parents=True, exist_ok=True)
    write_keyring(Path(keyring_file), sorted(keys.values(), key=lambda k: (k.source, k.retired, k.signer)))
    return list(keys.values())


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m shared.signing",
                                     description="Create (or rotate) the event signing keys and the trusted keyring.")
    parser.add_argument("--keys-dir", type=Path, required=True, help="<dir>/<service>/events.pem per service")
    parser.add_argument("--keyring", type=Path, required=True, help="the JSON keyring (JZ_EVENT_TRUSTED_KEYS_FILE)")
    parser.add_argument("--service", action="append", default=[], help="a service to hold a key (repeat)")
    parser.add_argument("--rotate", action="append", default=[], help="replace this service's key (repeat)")
    args = parser.parse_args(argv)
    for key in init_deployment_keys(args.keys_dir, args.keyring, args.service or ["registry", "benefits", "audit"],
                                    args.rotate):
        print(f"{key.signer}\t{key.source}\t{'retired' if key.retired else 'current'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
